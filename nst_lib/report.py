"""Build the report: run the numbered notebooks with papermill, render one HTML page.

``python -m nst_lib report --profile standard`` (what ``make report`` runs):

1. every numbered notebook ``NN_*.ipynb`` (the repository's ``notebooks/``,
   installed as ``nst_lib.notebooks``) runs with papermill, in number order,
   with the profile, size, steps, device, weights and precision as parameters, in its own
   folder ``<build>/<notebook>/``, which receives the executed copy and its
   figures: the sources are only read;
2. a section whose notebook, parameters and library code are unchanged since
   the last build (finished or interrupted) is reused, not run again; a section
   that runs keeps each optimization in ``<build>/results/`` (a
   ``store.Store``, shared by every section and carried from one build to the
   next), so that an optimization two figures or two sections need runs once,
   and one that an earlier build (or an interrupted one) finished is read back;
3. ``index.html`` is written (``page.compose``): one self-contained page with
   a summary of every claim, the sections in order, rendered by nbconvert, and
   the profile, precision, device, commit, times and load in its header; beside
   it ``claims.json`` (every claim with its verdict: two builds are compared
   with ``python -m nst_lib.claims A/claims.json B/claims.json``) and
   ``build.json`` (the seconds and the load of each section, and the machine);
4. only then does the new report replace the old one, so a failed or
   interrupted build leaves the previous report as it was.

The build marks each folder it makes (the report, and beside it ``.partial``
while building and ``.old`` while swapping) with ``MARKER``, which lists
everything it wrote there, and it replaces or removes only such folders and
only what they list: an existing folder that is not a report is refused before
any work, and so is a report folder that holds something the build did not
write. Paths (weights, pictures, the asset mirror and cache) are made absolute
before the notebooks run in their own folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from importlib import resources
from pathlib import Path

from . import audit, keys, profiles
from .assets import CACHE_VARIABLE, MIRROR_VARIABLE
from .cluster import served
from .files import Interrupted, WriteError, atomic_write, check_folder
from .images import image_files_in
from .notebook import PROGRESS_VARIABLE, RESULTS_VARIABLE
from .page import compose
from .precision import bfloat16_features
from .profiles import get_profile
from .store import Store
from .timing import LoadSampler, cores, summary
from .vgg import WeightsError, check_precision, weights_file, weights_source

SECTION_FILE = "section.json"
CLAIMS_FILE = "claims.json"
BUILD_FILE = "build.json"
# Seconds between two readings of the load average while a notebook runs.
LOAD_EVERY_S = 5.0
# Beside the report folder, the build makes <name>.partial and, while swapping, <name>.old.
SPARES = (".partial", ".old")
# In every folder the build makes: what it wrote there (the folder's entries, as relative paths).
MARKER = ".nst-report.json"
MARKER_FORMAT = "nst_lib.report/1"
# The section that shows a reader's own photographs: built only when some are given.
PICTURES = "05_your_pictures"


class BuildError(RuntimeError):
    """A notebook failed; the message names it, the cell and the error."""


def notebook_folder() -> Path:
    """Where the numbered notebooks are: ``notebooks/`` in a checkout, ``nst_lib/notebooks`` when installed."""
    try:
        return Path(str(resources.files("nst_lib.notebooks")))
    except ModuleNotFoundError:  # an editable install made before the notebooks became package data
        raise ValueError(
            "This installation of nst_lib has no notebooks: reinstall it (in a checkout: make setup)."
        ) from None


def notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks, in section order."""
    return sorted(p for p in (folder or notebook_folder()).glob("[0-9][0-9]_*.ipynb"))


def section_key(notebook: Path, parameters: dict, code: str) -> str:
    """What a section depends on (``keys.section_key``): the notebook, its parameters, the library code, and
    the contents of every file a parameter names: a weights file, the photographs and paintings given by
    absolute path, the images of a folder (an album: only the image files the section reads)."""
    return keys.section_key(notebook, parameters, code, _named_files(parameters))


def _named_files(parameters: dict) -> dict[str, list[Path]]:
    """The files each parameter stands for, by the parameter's name."""
    files = {}
    for name, value in parameters.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        paths = [Path(item) for item in items if isinstance(item, str) and os.path.isabs(item)]
        if name == "weights" and isinstance(value, str):
            try:
                paths = [path] if (path := weights_file(value)) is not None else []
            except WeightsError:  # the section's own run says what is wrong with it
                paths = []
        found = [file for path in paths for file in (image_files_in(path) if path.is_dir() else [path])]
        if found:
            files[name] = [file for file in found if file.is_file()]
    return files


def check_pictures(photos=(), paintings=(), album=None) -> dict:
    """A reader's own pictures as the parameters of the section that shows them (``PICTURES``):
    files as absolute paths, named images by name, each checked to open as an image; {} when none
    are given. A bad one is one sentence (ImageError or AssetError)."""
    from .assets import names, resolve
    from .images import image_files_in, open_image

    def checked(source) -> str:
        path = resolve(source)  # a named image's file; an AssetError for a word that is neither
        open_image(path)
        return str(source) if str(source) in names() else str(path.resolve())

    if not (photos or paintings or album):
        return {}
    folder = None
    if album is not None:
        files = image_files_in(album)
        for file in files:
            open_image(file)
        folder = str(Path(album).expanduser().resolve())
    return {"photos": [checked(p) for p in photos], "paintings": [checked(p) for p in paintings], "album": folder}


def build(
    output: str | os.PathLike,
    *,
    profile: str = profiles.DEFAULT_PROFILE,
    size: int | None = None,
    steps: int | None = None,
    device: str = profiles.DEVICE,
    weights: str = profiles.WEIGHTS,
    precision: str = profiles.PRECISION,
    only: list[str] | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
    threads: int | None = None,
    photos: list[str] = (),
    paintings: list[str] = (),
    album: str | os.PathLike | None = None,
    log=print,
) -> Path:
    """Build the report into ``output`` (replaced only on success); return index.html's path.

    ``executor``, ``scheduler`` and ``threads`` say where the notebooks' batches of optimizations run
    (``cluster.executor_from``): a local cluster is started once for the whole build.

    ``photos``, ``paintings`` (files or named images) and ``album`` (a folder of photographs) add
    the section "Your pictures" (``PICTURES``); without any of them it is left out.

    ``only``: build just the sections whose numbers start so (e.g. ["01", "03"]); the other sections of the
    report in ``output`` are kept as they are and the page is rendered again with all of them.
    An interrupt (Ctrl-C, SIGTERM) raises ``Interrupted``, whose message says what was kept.
    """
    get_profile(profile)  # an unknown profile is one sentence, before anything else
    _check_overrides(size, steps)
    weights = weights_source(weights)  # a kernel works in its section's folder: a relative path would miss
    pictures = check_pictures(photos, paintings, album)
    output = _check_output(output)
    partial = output.with_name(output.name + ".partial")
    _check_place(output, pictures)
    _recover(output)
    chosen = [nb for nb in notebooks() if not only or any(nb.stem.startswith(o) for o in only)]
    if not pictures and only and [nb.stem for nb in chosen] == [PICTURES]:
        raise ValueError(f"{PICTURES} shows your own pictures: give --content, --style or --album as well.")
    chosen = [nb for nb in chosen if pictures or nb.stem != PICTURES]
    if not chosen:
        raise ValueError(f"No notebook in {notebook_folder()} matches {only}.")
    check_precision(precision)
    settings = {"profile": profile, "size": size, "steps": steps, "device": device, "weights": weights,
                "precision": precision, **pictures}
    _absolute_asset_places()
    done: list[dict] = []
    where = {"scheduler": scheduler, "threads": threads, "device": device, "size": get_profile(profile, size=size).size}
    try:
        with served(executor, **where, log=log):  # first: a cluster that cannot be reached leaves no folder
            _make_folder(partial)
            Store(partial / profiles.RESULTS).carry(output / profiles.RESULTS)
            _build_sections(chosen, settings, partial, output, log, done)
        kept = [] if not only else _keep_others(chosen, partial, output, log)
        order = [nb.name for nb in notebooks()]
        sections = sorted(done + kept, key=lambda section: order.index(section["notebook"]))
        page = compose(partial, sections)
        with atomic_write(partial / CLAIMS_FILE, "w") as handle:
            json.dump({"profile": profile, "claims": page.claims}, handle, indent=1, ensure_ascii=False)
        cost = audit.rows(partial, sections)
        with atomic_write(partial / BUILD_FILE, "w") as handle:
            json.dump(_build_record(partial, profile, sections, cost), handle, indent=1)
        with atomic_write(partial / "index.html", "w") as handle:
            handle.write(page.html)
        _mark(partial)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(output, partial, chosen, done)) from None
    log(audit.text(cost))
    _swap(partial, output, log)
    return output / "index.html"


def _check_output(output) -> Path:
    """The report folder as an absolute path; refused in one sentence when it is the root of the file system
    or the current folder (or holds it), which the build would replace."""
    given = output
    output = Path(output).resolve()
    if output == Path(output.anchor):
        raise ValueError(f"The report folder {given} is the root of the file system: give a folder for the "
                         "report, such as report/quick.")
    here = Path.cwd().resolve()
    if output == here or output in here.parents:
        raise ValueError(f"The report folder {given} is the current folder{' or holds it' * (output != here)}, "
                         "which the build would replace: give a folder for the report, such as report/quick.")
    return output


def _absolute_asset_places() -> None:
    """Make a relative asset mirror or cache folder absolute: the notebooks' kernels work in other folders."""
    for name in (MIRROR_VARIABLE, CACHE_VARIABLE):
        value = os.environ.get(name)
        if value and not os.path.isabs(os.path.expanduser(value)):
            os.environ[name] = os.path.abspath(os.path.expanduser(value))


def _check_overrides(size, steps) -> None:
    from .images import check_size
    from .optimize import check_steps

    if size is not None:
        check_size(size, "size")
    if steps is not None:
        check_steps(steps, "steps")


def _check_place(output: Path, pictures: dict) -> None:
    """Refuse, before any work, a report folder that is a file, cannot be made or replaced
    (``files.check_folder``), is a folder the build did not make or holds something it did not write
    (``built_entries``), has a file or a folder not the build's in the way of the build's folders, or holds
    one of the reader's pictures (which the build would replace with the folder)."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output} is a file, not a report folder: give a folder (it is made if missing).")
    check_folder(output, "the report folder", beside=SPARES)
    for suffix in SPARES:
        spare = output.with_name(output.name + suffix)
        if spare.exists() and not spare.is_dir():
            raise ValueError(f"{spare} is a file where the build keeps a folder: move it away, or build elsewhere.")
    sources = [*pictures.get("photos", ()), *pictures.get("paintings", ()), pictures.get("album")]
    for source in sources:
        inside = [folder for folder in (output, *(output.with_name(output.name + s) for s in SPARES))
                  if source is not None and os.path.isabs(source) and Path(source).is_relative_to(folder)]
        if inside:
            raise ValueError(f"{source} is inside the report folder {inside[0]}, which the build replaces: copy it "
                             "elsewhere first, or build elsewhere.")
    _check_built(output)
    _check_built(output.with_name(output.name + ".old"), spare=True)
    partial = output.with_name(output.name + ".partial")
    if partial.is_dir() and built_entries(partial) is None:
        raise ValueError(f"{partial} is not an unfinished build of this report (it has no {MARKER}) but is where "
                         "the build works: move it away, or build elsewhere.")


def _check_built(folder: Path, spare: bool = False) -> None:
    """Refuse a folder at ``folder`` (the report's, or with ``spare`` the one the previous report is moved to
    while swapping) that the build did not make, or that holds something the build did not write."""
    if not folder.is_dir():
        return
    listed = built_entries(folder)
    if listed is None:
        held = sorted(entry.name for entry in folder.iterdir())
        holds = f"it holds {held[0]}{' and more' * (len(held) > 1)}, and no {MARKER}"
        if spare:
            raise ValueError(f"{folder} is not a previous report kept by the build ({holds}), but the build needs "
                             "that name while it swaps: move it away, or build elsewhere.")
        if "sweep.json" in held or (folder / "cells").is_dir():
            raise ValueError(f"{folder} is a sweep's folder, not a report's, and the build would replace it: give "
                             "the report a folder of its own.")
        raise ValueError(f"{folder} is not a report ({holds}), and the build would replace it: give a new or empty "
                         "folder, or the folder of an earlier report.")
    foreign = sorted(_entries(folder) - listed)
    if foreign:
        others = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ValueError(f"{folder / foreign[0]}{others} was not written by the report build, which "
                         f"{'removes' if spare else 'replaces'} {folder}: move it out first.")


def built_entries(folder: Path) -> set[str] | None:
    """What the build wrote in ``folder``, as paths relative to it: the entries its ``MARKER`` lists, every entry
    of a report built before reports were marked (index.html, claims.json, build.json, section folders and the
    results, nothing else), none for an empty folder; None when the folder is not the build's."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except FileNotFoundError:
        entries = list(folder.iterdir())
        sections = [entry for entry in entries if entry.is_dir() and (
            (entry / SECTION_FILE).is_file() or entry.name == profiles.RESULTS)]
        pages = [entry for entry in entries
                 if entry.is_file() and entry.name in ("index.html", CLAIMS_FILE, BUILD_FILE)]
        if not entries:
            return set()
        if (folder / "index.html").is_file() and sections and len(sections) + len(pages) == len(entries):
            return _entries(folder)
        return None
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT or not isinstance(
            marker.get("entries"), list):
        return None
    return {str(entry) for entry in marker["entries"]}


def _entries(folder: Path) -> set[str]:
    """Everything inside ``folder`` (files, links and folders, at any depth) but its marker, as relative paths."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path != folder / MARKER}


def _mark(folder: Path) -> None:
    """Write ``folder``'s ``MARKER``: everything in it now, which the build wrote."""
    entries = sorted(_entries(folder))  # before the marker's own temporary file appears
    with atomic_write(folder / MARKER, "w") as handle:
        json.dump({"format": MARKER_FORMAT, "entries": entries}, handle, indent=0)


def _make_folder(folder: Path) -> None:
    """Make the build's folder, marked as the build's from the start (``_check_place`` has refused another)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MARKER).exists():
            _mark(folder)
    except OSError as error:
        raise WriteError(f"Cannot make the report folder {folder} ({error.strerror or error}).") from None


def _build_sections(chosen: list[Path], settings: dict, partial: Path, output: Path, log, done: list) -> None:
    """Run or reuse each chosen section in turn, appending each finished one to ``done``."""
    code = keys.code_fingerprint()  # a section is stale when the code it calls changed
    for number, notebook in enumerate(chosen, start=1):
        label = f"[{number}/{len(chosen)}] {notebook.stem}"
        done.append(_section(notebook, settings, code, partial, output, label, log))


def _keep_others(chosen: list[Path], partial: Path, output: Path, log) -> list[dict]:
    """The finished sections of the report in ``output`` that were not chosen, copied into the build as they are."""
    kept = []
    for notebook in notebooks():
        if notebook not in chosen:
            section = _reuse(partial / notebook.stem, output / notebook.stem, key=None)
            if section is not None:
                log(f"{notebook.stem}: not rebuilt, kept from the report as it was")
                kept.append(section)
    return kept


def _interrupted(output: Path, partial: Path, chosen: list[Path], done: list[dict]) -> str:
    """What an interrupted build leaves behind, in one sentence."""
    report = f"the report in {output} is unchanged" if output.is_dir() else f"no report was written to {output}"
    finished = [Path(section["notebook"]).stem for section in done]
    unfinished = [nb.stem for nb in chosen if nb.stem not in finished]
    kept = f"; finished sections ({', '.join(finished)}) are kept in {partial}, and the next build reuses them"
    return f"{report}{kept if finished else ''}; not finished: {', '.join(unfinished) or 'the page itself'}."


def _section(notebook: Path, settings: dict, code: str, partial: Path, output: Path, label: str, log) -> dict:
    """One section: reused when its key matches a finished one, else run with papermill."""
    import papermill  # slow to import; only the build needs it

    folder = partial / notebook.stem
    declared = papermill.inspect_notebook(str(notebook))
    parameters = {**settings, "output_dir": str(folder / profiles.FIGURES)}
    parameters = {k: v for k, v in parameters.items() if k in declared}  # e.g. the explorer has no profile
    key = section_key(notebook, {k: v for k, v in parameters.items() if k != "output_dir"}, code)
    reused = _reuse(folder, output / notebook.stem, key)
    if reused is not None:
        log(f"{label}: unchanged, reused ({reused['seconds']:.0f} s when built)")
        return reused
    log(f"{label}: running ({settings['profile']} profile)")
    with LoadSampler(LOAD_EVERY_S) as load:
        seconds = _execute(notebook, folder, parameters)
    optimizations = _optimizations(folder)
    section = {"notebook": notebook.name, "key": key, "parameters": parameters, "seconds": seconds,
               "optimizations": optimizations, "load": [round(value, 2) for value in load.samples], "cores": cores()}
    with atomic_write(folder / SECTION_FILE, "w") as handle:
        json.dump(section, handle, indent=1)
    tally = f" ({optimizations['computed']} optimizations run, {optimizations['reused']} reused)" \
        if optimizations else ""
    log(f"    done in {seconds:.0f} s{tally}")
    return section


def _optimizations(folder: Path) -> dict | None:
    """How many optimizations the section's notebook ran and how many it read back (see
    ``notebook.Setup``), or None for a notebook that asked for none."""
    try:
        recorded = json.loads((folder / profiles.FIGURES / profiles.SETUP_FILE).read_text())["optimizations"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if recorded.get("computed", 0) + recorded.get("reused", 0) else None


def _build_record(partial: Path, profile: str, sections: list[dict], cost: list[dict]) -> dict:
    """What ``BUILD_FILE`` records: per section its seconds, the load while it ran and its work, the machine, and
    the cost audit (``audit.rows``)."""
    machine = {}
    for section in sections:
        try:
            machine = json.loads((partial / Path(section["notebook"]).stem / profiles.FIGURES / profiles.SETUP_FILE).read_text())
            break
        except (OSError, ValueError):
            continue
    keep = ("device", "device_name", "threads", "precision", "precision_reason", "torch")
    return {
        "profile": profile,
        "machine": {name: machine.get(name) for name in keep} | {"cores": cores(), "bfloat16": bfloat16_features()},
        "sections": [{"notebook": s["notebook"], "seconds": round(s["seconds"], 1), "load": summary(s.get("load", [])),
                      "work": audit.work_of(partial, s)} for s in sections],
        "cost": cost,
    }


def _execute(notebook: Path, folder: Path, parameters: dict) -> float:
    """Run ``notebook`` into ``folder`` with papermill; its wall time in seconds, or a BuildError."""
    import papermill

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    executed = folder / notebook.name
    store = folder.parent / profiles.RESULTS  # every section of the build keeps its optimizations there
    start = time.perf_counter()
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            cwd=str(folder),
            progress_bar=False,
            kernel_name="python3",
            kernel_manager_class=_kernels_with({PROGRESS_VARIABLE: "terminal", RESULTS_VARIABLE: str(store)}),
            # Let the kernel's own stderr reach this terminal (progress bars) instead of the notebook.
            extra_arguments=["--IPKernelApp.capture_fd_output=False", "--IPKernelApp.log_level=ERROR"],
            # Stopped at the end or by an interrupt, the kernel is ended at once: asked to shut down while
            # busy, it would print a traceback about its closed sockets.
            shutdown_kernel="immediate",
        )
    except papermill.PapermillExecutionError as error:
        raise BuildError(
            f"{notebook.name} failed in cell {error.exec_count} ({error.ename}: {error.evalue}); "
            f"the executed copy is {executed}, and the previous report is untouched.\n"
            f"--- the failing cell ---\n{error.source}"
        ) from None
    finally:
        _restore(handlers)
    return time.perf_counter() - start


def _kernels_with(environment: dict):
    """A kernel manager (for nbclient) whose kernels start with ``environment`` added to this process's:
    what the build tells its kernels (bars on this terminal, where the results are) reaches them and
    nothing else."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **options):
            options["env"] = {**options.get("env", os.environ), **environment}
            return await super().start_kernel(**options)

    return KernelManager


def _restore(handlers: dict) -> None:
    """Put back the signal handlers that the notebook client replaces with its own (and leaves at the default)."""
    if threading.current_thread() is threading.main_thread():
        for number, handler in handlers.items():
            if handler is not None:
                signal.signal(number, handler)


def _reuse(folder: Path, previous: Path, key: str | None) -> dict | None:
    """A finished section with this key, from an interrupted build or the current report; with ``key``
    None, the current report's section whatever its key (a section kept as it was)."""
    for candidate in (folder, previous) if key is not None else (previous,):
        try:
            section = json.loads((candidate / SECTION_FILE).read_text())
        except (OSError, ValueError):
            continue
        if key is None or section.get("key") == key:
            if candidate != folder:
                _copy_section(candidate, folder)
            return section
    return None


def _copy_section(source: Path, folder: Path) -> None:
    """Copy a section's folder whole or not at all: a half-copied one must never pass for finished."""
    copy = folder.with_name(folder.name + ".copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    shutil.rmtree(folder, ignore_errors=True)
    copy.rename(folder)


def _swap(partial: Path, output: Path, log=print) -> None:
    """Replace ``output`` by ``partial`` with two renames; an interrupt between them puts ``output`` back (and
    ``_recover`` mends a crash there). Of the previous report only what the build wrote is removed
    (``_remove_built``): anything else found there by now is kept in ``<name>.old``, and said."""
    old = output.with_name(output.name + ".old")
    if old.exists() and _remove_built(old):
        raise WriteError(f"{old} holds what the build did not write: move it away (the new report is complete in "
                         f"{partial}, and the next build reuses its sections).")
    if output.exists():
        output.rename(old)
    try:
        partial.rename(output)
    except BaseException:
        _recover(output)
        raise
    left = _remove_built(old)
    if left:
        log(f"report: {old} keeps what the build did not write, found in the previous report: {', '.join(left[:3])}"
            f"{' ...' * (len(left) > 3)}")


def _remove_built(folder: Path) -> list[str]:
    """Remove from ``folder`` what the build wrote (``built_entries``), then the folder if nothing else is in it;
    return what is left, which the build did not write."""
    if not folder.is_dir():
        return []
    listed = built_entries(folder) or set()
    for name in sorted(listed, key=lambda name: name.count("/"), reverse=True):  # the deepest first
        path = folder / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only once empty: a folder that still holds something else stays
            elif path.exists() or path.is_symlink():
                path.unlink()
    with contextlib.suppress(OSError):
        (folder / MARKER).unlink(missing_ok=True)
        folder.rmdir()
    return sorted(_entries(folder)) if folder.exists() else []


def _recover(output: Path) -> None:
    old = output.with_name(output.name + ".old")
    if old.exists() and not output.exists():
        old.rename(output)
