"""What every report notebook does first: settings, device, model, and where figures go.

A notebook's ``parameters`` cell names a profile and optional overrides; it
then calls ``setup(...)`` and uses the returned ``Setup`` for everything else,
so that a notebook run by papermill and one stepped through by hand behave
the same.

The profile a notebook leaves open (``profile = None``) comes from the
environment variable ``NST_PROFILE``, else it is ``profiles.DEFAULT_PROFILE``:
a notebook opened by hand runs what the report shows, and the tests set
``NST_PROFILE=quick`` for the kernels that nbval starts. A report build
passes its profile explicitly.

Figures go through ``Setup.save``: the PNG is written once, the notebook shows
that same file, and the output records its file name, title and caption, from
which the report makes a captioned figure that links to the full-size PNG.

Progress follows the environment variable ``NST_PROGRESS``: ``notebook``
(default; bars under the cells), ``terminal`` (what ``make report`` sets: bars
and figure names on the terminal that runs the build) or ``off`` (tests).

A figure's optimizations go to ``Setup.transfer_all`` as one batch, which runs
on the executor that ``NST_SCHEDULER`` / ``NST_EXECUTOR`` / ``NST_THREADS``
name (see ``nst_lib.cluster``; the report build sets them): in this process,
or on a Dask cluster, with one progress bar over the batch.

Every optimization, in a batch or alone (``Setup.transfer``), goes through a
``store.Store`` first: one that this notebook, another section of the report
or an earlier build already finished is read back (exactly: same pixels, same
history, same seconds) instead of run again. The store is the folder that
``NST_RESULTS`` names (the report build's ``results/``), else ``results``
beside the figures folder. ``setup.json`` counts what ran and what was reused.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Hashable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import profiles
from .cluster import _threads_from_environment, executor_from
from .figures import save_figure
from .files import atomic_write
from .images import load_image
from .jobs import Job, JobError, run_in_order
from .keys import job_key
from .optimize import Result, transfer
from .profiles import FIGURE_METADATA, INPUTS_FILE, NARROW_SUFFIX, PROFILES, SETUP_FILE, Profile, get_profile
from .store import Store
from .vgg import VGG19, describe_device, pick_device, precision_choice

PROFILE_VARIABLE = "NST_PROFILE"
PROGRESS_VARIABLE = "NST_PROGRESS"
PROGRESS_MODES = {"notebook": True, "terminal": "terminal", "off": False}
RESULTS_VARIABLE = "NST_RESULTS"


@dataclass
class Setup:
    """The settings of one notebook run and the objects they imply."""

    profile: Profile
    device: torch.device
    model: VGG19
    output_dir: Path
    progress: bool | str = True
    figures: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    executor_kind: str | None = None  # None: from the environment (see nst_lib.cluster.executor_from)
    results: Path | None = None  # the store's folder; None: results beside the figures folder
    _executor: object = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    optimizations: dict = field(default_factory=lambda: {"computed": 0, "reused": 0})
    work: list[dict] = field(default_factory=list)  # what cost time, for the build's cost audit (audit.py)

    def load(self, name_or_path, size: int | None = None) -> torch.Tensor:
        """A named image or file at the profile's size (or ``size``), on the CPU; its name joins
        ``<output_dir>/inputs.json``."""
        image = load_image(name_or_path, size or self.profile.size)
        if str(name_or_path) not in self.inputs:
            self.inputs.append(str(name_or_path))
            with atomic_write(self.output_dir / INPUTS_FILE, "w") as handle:
                json.dump(self.inputs, handle, indent=1)
        return image

    def transfer(self, content=None, styles=(), *, label: str = "optimizing", **options) -> Result:
        """``optimize.transfer`` with this run's model (unless ``model=`` says another), step budget
        and progress display, here; one already kept in the store is read back instead."""
        options.setdefault("steps", self.profile.steps)
        model = options.pop("model", self.model)
        options = dict(content=content, styles=styles, **options)
        key = job_key(options, model.settings, model.device.type, torch.get_num_threads())
        result = self.store.found([key]).get(key)
        reused = result is not None
        if reused:
            self.announce(f"{label}: reused")
        else:
            self.announce(label)
            result = transfer(model=model, progress=self.progress, description=label, **options)
            self.store.put(key, result)
        self._optimized(label, result, reused, model)
        self._count([reused])
        return result

    def transfer_all(self, jobs: Mapping[Hashable, Mapping]) -> dict:
        """A figure's independent optimizations as one batch: {key: keyword arguments of ``transfer``
        (``label`` included)} -> {key: Result}, in the order of ``jobs``, whichever executor ran them.
        Those kept in the store are read back; the others run as one batch on the executor."""
        batch = []
        for key, job in jobs.items():
            options = dict(job)
            label = options.pop("label", str(key))
            options.setdefault("steps", self.profile.steps)
            batch.append(Job(options, label))
        threads = self.executor.job_threads
        batch_keys = [job_key(job.options, self.model.settings, self.device.type, threads) for job in batch]
        found = self.store.found(batch_keys)
        todo = len(set(batch_keys) - set(found))
        self.announce(f"{len(batch)} optimizations ({todo} to run on {self.executor.name}, "
                      f"{len(batch) - todo} reused): {batch[0].label} ... {batch[-1].label}")
        results: list[Result | None] = [None] * len(batch)
        reused = [False] * len(batch)
        outcomes = self.store.run(self.executor, self.model, batch, batch_keys, found=found, progress=self.progress,
                                  description=f"{todo} optimizations")
        for index, outcome, was_reused in outcomes:
            if isinstance(outcome, JobError):
                raise outcome
            results[index], reused[index] = outcome, was_reused
        for job, result, was_reused in zip(batch, results, reused):
            self._optimized(job.label, result, was_reused, self.model)
        self._count(reused)
        return dict(zip(jobs, results))

    @contextmanager
    def cost(self, what: str, *, size, amount: int, unit: str, precision: str | None = None,
             figure: str | None = None):
        """Time the block as one line of the build's cost audit: ``what`` (e.g. "generator training"), the
        picture's ``size`` (a tensor's shape, (H, W) or px), ``amount`` of ``unit`` (e.g. 200 "Adam steps"),
        the precision it ran in (None: this run's model's) and the figure it is for (None: the next one saved).
        Optimizations record themselves."""
        started = time.perf_counter()
        yield
        self._add_work(what, size, amount, unit, precision or self.precision, time.perf_counter() - started,
                       optimization=False, figure=figure)

    def _optimized(self, label: str, result: Result, reused: bool, model: VGG19) -> None:
        self._add_work(label, tuple(result.image.shape), result.evaluations, "evaluations", precision_of(model),
                       0.0 if reused else result.seconds, optimization=True,
                       reused_seconds=result.seconds if reused else None)

    def _add_work(self, what, size, amount, unit, precision, seconds, optimization, reused_seconds=None,
                  figure=None) -> None:
        shape = tuple(size.shape) if hasattr(size, "shape") else (size,) if isinstance(size, int) else tuple(size)
        self.work.append({"what": what, "optimization": optimization, "figure": figure,
                          "size": "×".join(map(str, shape[-2:][::-1])),
                          "amount": int(amount), "unit": unit, "precision": precision, "seconds": round(seconds, 2),
                          "reused_seconds": None if reused_seconds is None else round(reused_seconds, 2)})

    @property
    def precision(self) -> str:
        """What this run's model computes in: "bfloat16" or "float32"."""
        return precision_of(self.model)

    @property
    def store(self) -> Store:
        """Where this run's optimizations are kept and found again (see ``store.Store``)."""
        if self._store is None:
            log = self.announce if self.progress == "terminal" else print
            self._store = Store(self.results or self.output_dir.parent / profiles.RESULTS, log=log)
        return self._store

    def _count(self, reused: list[bool]) -> None:
        """Add a batch to the optimizations that ran and that were read back, and record them."""
        self.optimizations["reused"] += sum(reused)
        self.optimizations["computed"] += len(reused) - sum(reused)
        self.record()

    @property
    def executor(self):
        """Where ``transfer_all`` runs its batches, chosen at the first batch."""
        if self._executor is None:
            log = self.announce if self.progress == "terminal" else print
            self._executor = executor_from(self.executor_kind, device=str(self.device), size=self.profile.size,
                                           model=self.model, log=log)
        return self._executor

    def save(self, figure, name: str, caption: str | None = None) -> None:
        """Save a matplotlib figure as ``<output_dir>/<name>.png``, show that file as the cell's
        output, and close the figure (so that it is not shown twice).

        ``caption``: one or two sentences on how to read the figure, shown under it in the report
        and used, with the figure's title, as its alternative text.
        """
        import matplotlib.pyplot as plt

        path = save_figure(figure, self.output_dir / f"{name}.png")
        title = figure.get_suptitle() if hasattr(figure, "get_suptitle") else ""
        plt.close(figure)
        if callable(getattr(figure, "narrow", None)):  # a grid: its rendition for narrow screens beside it
            narrow = figure.narrow()
            save_figure(narrow, self.output_dir / f"{name}{NARROW_SUFFIX}")
            plt.close(narrow)
        self.figures.append(path.name)
        for entry in self.work:  # the work since the last figure was for this one
            entry["figure"] = entry["figure"] or name
        self.record()
        self.announce(f"figure {path.name} saved")
        show(SavedFigure(path, title=title, caption=caption or ""))

    def announce(self, message: str) -> None:
        """Tell the person running a report build what is happening (terminal mode only)."""
        if self.progress == "terminal":
            print(f"    {message}", file=sys.__stderr__, flush=True)

    def record(self) -> None:
        """Write ``settings()`` and the optimizations run and reused so far to ``<output_dir>/setup.json``."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.output_dir / SETUP_FILE, "w") as handle:
            json.dump({**self.settings(), "optimizations": self.optimizations, "work": self.work}, handle, indent=1)

    def settings(self) -> dict:
        """This run's profile, machine, network and software, as the report's header shows them."""
        return {
            "profile": self.profile.name,
            "size": self.profile.size,
            "steps": self.profile.steps,
            "device": str(self.device),
            "device_name": describe_device(self.device),
            "threads": torch.get_num_threads(),
            "precision": self.precision,
            "precision_reason": self.precision_reason(),
            "weights": self.model.weights,
            "pooling": self.model.pooling,
            "torch": torch.__version__,
            "python": sys.executable,
            "library": str(Path(__file__).resolve().parent),
        }

    def precision_reason(self) -> str:
        """Why the model computes in the precision it does: asked for, or what "auto" measured here."""
        if self.model.precision != "auto":
            return f"asked for (precision={self.model.precision!r})"
        return precision_choice(self.device).reason


def setup(
    profile: str | None = None,
    *,
    size: int | None = None,
    steps: int | None = None,
    device: str = profiles.DEVICE,
    weights: str = profiles.WEIGHTS,
    pooling: str = profiles.POOLING,
    precision: str = profiles.PRECISION,
    output_dir: str | os.PathLike | None = None,
    executor: str | None = None,
) -> Setup:
    """Resolve a notebook's parameters; record them in ``<output_dir>/setup.json``.

    ``profile`` None: ``$NST_PROFILE`` when set, else ``profiles.DEFAULT_PROFILE``. ``output_dir`` None:
    the folder ``profiles.FIGURES`` here. Optimizations are kept in the folder ``$NST_RESULTS`` when set,
    else in ``profiles.RESULTS`` beside ``output_dir``.
    """
    chosen = get_profile(chosen_profile(profile), size=size, steps=steps)
    mode = os.environ.get(PROGRESS_VARIABLE, "notebook")
    if mode not in PROGRESS_MODES:
        raise ValueError(f"{PROGRESS_VARIABLE}={mode!r} is not understood: use {' or '.join(PROGRESS_MODES)}.")
    where = pick_device(device)
    threads = _threads_from_environment()  # what the build's batches run with (nst report --threads)
    if threads:
        torch.set_num_threads(threads)
    run = Setup(
        profile=chosen,
        device=where,
        model=VGG19(weights, pooling, precision=precision).to(where),
        output_dir=Path(profiles.FIGURES if output_dir is None else output_dir),
        progress=PROGRESS_MODES[mode],
        executor_kind=executor,
        results=Path(os.environ[RESULTS_VARIABLE]) if os.environ.get(RESULTS_VARIABLE) else None,
    )
    run.record()
    return run


def precision_of(model: VGG19) -> str:
    """What ``model`` computes in on its device: "bfloat16" or "float32"."""
    return "bfloat16" if model.uses_bfloat16(model.device) else "float32"


def chosen_profile(profile: str | None = None) -> str:
    """``profile``, else ``$NST_PROFILE``, else ``profiles.DEFAULT_PROFILE``; an unknown name is one sentence."""
    if profile is None:
        profile = os.environ.get(PROFILE_VARIABLE) or profiles.DEFAULT_PROFILE
        if profile not in PROFILES:
            raise ValueError(
                f"{PROFILE_VARIABLE}={profile!r} is not a profile: use one of {', '.join(PROFILES)}, or unset it."
            )
    return profile


@dataclass(frozen=True)
class SavedFigure:
    """A figure file as a notebook output: the PNG itself, and, in the output's metadata under
    ``FIGURE_METADATA``, its file name, title and caption (what the report builds its figure from)."""

    path: Path
    title: str = ""
    caption: str = ""

    @property
    def description(self) -> str:
        """Title and caption in one line: the figure's text form and alternative text."""
        parts = [text.strip().rstrip(".") for text in (self.title, self.caption) if text.strip()]
        return ". ".join(parts) + "." if parts else f"Figure {self.path.stem}."

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {"image/png": base64.b64encode(self.path.read_bytes()).decode("ascii"), "text/plain": self.description}
        metadata = {FIGURE_METADATA: {"file": self.path.name, "title": self.title, "caption": self.caption}}
        return data, metadata


def show(output) -> None:
    """Display ``output`` as a cell output when running in a notebook kernel; elsewhere do nothing."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(output)
