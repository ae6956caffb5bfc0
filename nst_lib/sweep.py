"""Parameter sweeps: a grid of optimizations, each cell kept as it finishes, a contact sheet at the end.

``sweep(output, {"style_weight": [1, 1e2, 1e4], "seed": [0, 1]}, content="tubingen",
style="starry_night", size=128)`` runs every combination of the axes' values
(the other settings fixed) as one batch on an executor (``jobs.InProcess`` or ``cluster.DaskExecutor``)
and writes, each file atomically:

- ``cells/<key>.png``, ``cells/<key>.npy`` and ``cells/<key>.json`` as each
  cell finishes (a ``store.Store``): its picture, its exact pixels, and its
  record (settings, losses, evaluations, seconds). ``<key>`` is
  ``keys.job_key``: everything that decides the cell's picture (settings,
  input pixels, the network's weights by their contents, pooling, precision,
  pre-ReLU reading, device, threads per optimization, the library's code), so
  a sweep run again (after an interruption, or with more values) reuses every
  finished cell, and a cell whose files were changed or damaged runs again;
- ``sweep.csv`` and ``sweep.json``: every cell, failed ones with their error;
- ``contact_sheet.png``: the pictures in a labelled grid, columns and rows
  taken from the swept axes.

A value given twice on an axis (``1e4,10000``) is one cell. A failing cell is
reported and the others go on. An interrupt (Ctrl-C, SIGTERM) raises
``files.Interrupted``, whose message says which files were written.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import profiles
from .assets import resolve
from .cluster import executor_from
from .figures import contact_sheet, save_figure
from .files import Interrupted, WriteError, atomic_write, check_folder, same_file
from .images import check_size, load_image
from .jobs import InProcess, Job, JobError, ModelSpec, worker_model
from .keys import code_fingerprint, job_key
from .losses import LossSpec, check_weight
from .optimize import INITS
from .sizing import measure_threads
from .store import Store
from .vgg import LAYER_INDEX, min_image_side, weights_source

# The axes a sweep can vary, in the order the cells are enumerated (the last varies fastest).
AXES = ("content", "style", "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
        "init", "seed", "size", "steps")
DEFAULTS = {
    "content": None,
    "style": None,
    "content_weight": profiles.CONTENT_WEIGHT,
    "style_weight": profiles.STYLE_WEIGHT,
    "tv_weight": profiles.TV_WEIGHT,
    "content_layers": profiles.CONTENT_LAYERS,
    "style_layers": profiles.STYLE_LAYERS,
    "init": profiles.INIT,
    "seed": profiles.SEED,
    "size": profiles.SIZE,
    "steps": profiles.STEPS,
}
LOSS_TERMS = ("content", "style", "tv", "total")
CELLS = "cells"
# The files that sum a sweep up, in the order they are written.
SUMMARY = ("sweep.json", "sweep.csv", "contact_sheet.png")
MAX_CELLS = profiles.SWEEP_MAX_CELLS


@dataclass
class SweepResult:
    """What a sweep wrote: one dict per cell (grid order), and the summary files."""

    cells: list[dict]
    folder: Path
    csv: Path
    json: Path
    sheet: Path | None

    @property
    def failed(self) -> list[dict]:
        return [cell for cell in self.cells if cell["status"] != "ok"]

    @property
    def reused(self) -> int:
        return sum(bool(cell.get("reused")) for cell in self.cells)


def grid(axes: Mapping[str, Sequence], fixed: Mapping[str, object] | None = None) -> list[dict]:
    """Every cell's settings: the product of the axes' values over the defaults and ``fixed``."""
    fixed = dict(fixed or {})
    for name in [*axes, *fixed]:
        if name not in AXES:
            raise ValueError(f"Unknown sweep axis {name!r}: choose from {', '.join(AXES)}.")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"The axis {name} needs a list of at least one value, got {values!r}.")
    ordered = [name for name in AXES if name in axes]
    base = {**DEFAULTS, **fixed}
    cells = [{**base, **dict(zip(ordered, values))} for values in itertools.product(*(axes[n] for n in ordered))]
    for cell in cells:
        for name in ("content_layers", "style_layers"):
            cell[name] = (cell[name],) if isinstance(cell[name], str) else tuple(cell[name])
    return cells


def distinct(axes: Mapping[str, Sequence]) -> tuple[dict[str, list], list[str]]:
    """The axes with each value once (the first of equal ones: 1e4 and 10000 are one), and the names of
    the axes that gave a value more than once."""
    unique, repeated = {}, []
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            unique[name] = values  # grid() says what is wrong with it
            continue
        unique[name] = []
        for value in values:
            if value not in unique[name]:
                unique[name].append(value)
        if len(unique[name]) < len(values):
            repeated.append(name)
    return unique, repeated


def swept_axes(axes: Mapping[str, Sequence]) -> list[str]:
    """The axes with more than one value, in ``AXES`` order."""
    return [name for name in AXES if len(axes.get(name, ())) > 1]


# --------------------------------------------------------------------------------------
# From settings to jobs.


def _loss(cell: dict) -> LossSpec:
    return LossSpec(
        content_layers=cell["content_layers"],
        style_layers=cell["style_layers"],
        content_weight=cell["content_weight"] if cell["content"] is not None else 0.0,
        style_weight=cell["style_weight"] if cell["style"] is not None else 0.0,
        tv_weight=cell["tv_weight"],
    )


def _check(cell: dict) -> None:
    """Refuse a cell that cannot run, before anything runs."""
    if cell["content"] is None and cell["style"] is None:
        raise ValueError("A sweep needs a content image, a style image or both.")
    if cell["init"] not in INITS:
        raise ValueError(f"Unknown init {cell['init']!r}: choose {' or '.join(INITS)}.")
    if cell["init"] == "content" and cell["content"] is None:
        raise ValueError("init 'content' needs a content image.")
    check_size(cell["size"])
    for name, smallest in (("seed", 0), ("steps", 1)):
        value = cell[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            raise ValueError(f"{name} must be a whole number of at least {smallest}, got {value!r}.")
    for name in ("content_weight", "style_weight", "tv_weight"):
        check_weight(cell[name], name)  # also a weight with no image to weigh: a typo is still a typo
    _loss(cell)  # checks layers and weights


def _check_sides(cell: dict, job: Job) -> None:
    """Refuse, before anything runs, a cell whose picture or style image is too small for its deepest layer."""
    layers = _loss(cell).layers
    smallest = min_image_side(layers)
    deepest = max(layers, key=LAYER_INDEX.get)
    content, styles = job.options["content"], job.options["styles"]
    if content is not None:
        pictures = [(cell["content"], content.shape[-2:])]
    else:
        pictures = [("the texture", job.options["shape"])]
    pictures += [(cell["style"], style.shape[-2:]) for style in styles]
    for name, (height, width) in pictures:
        if min(height, width) < smallest:
            raise ValueError(f"At size {cell['size']}, {name} is {width}x{height} px, but {deepest} needs a side of at "
                             f"least {smallest} px: use a larger size or shallower layers (no cell was run).")


class _Pictures:
    """Each input picture loaded once per size."""

    def __init__(self):
        self.images: dict[tuple[str, int], torch.Tensor] = {}

    def get(self, name, size: int) -> torch.Tensor | None:
        if name is None:
            return None
        if (str(name), size) not in self.images:
            self.images[str(name), size] = load_image(name, size)
        return self.images[str(name), size]


def _job(cell: dict, pictures: _Pictures) -> Job:
    content, style = pictures.get(cell["content"], cell["size"]), pictures.get(cell["style"], cell["size"])
    options = dict(content=content, styles=[] if style is None else [style], loss=_loss(cell), init=cell["init"],
                   seed=cell["seed"], steps=cell["steps"])
    if content is None:
        options["shape"] = (cell["size"], cell["size"])
    return Job(options, label=_label(cell))


def _label(cell: dict) -> str:
    parts = [f"{cell['content'] or 'texture'} / {cell['style'] or 'no style'}", f"sw {cell['style_weight']:g}",
             cell["init"], f"seed {cell['seed']}", f"{cell['size']} px"]
    return ", ".join(parts)


@dataclass
class Plan:
    """A sweep before it runs: every cell's settings and job (its pictures loaded), and the network."""

    cells: list[dict]
    jobs: list[Job]
    model: ModelSpec

    def keys(self, threads: int) -> list[str]:
        """Each cell's key (``keys.job_key``) when its optimization runs with ``threads`` torch threads."""
        code = code_fingerprint()
        return [job_key(job.options, self.model.arguments, self.model.device, threads, code) for job in self.jobs]


def plan(
    axes: Mapping[str, Sequence],
    fixed: Mapping[str, object] | None = None,
    *,
    weights: str = profiles.WEIGHTS,
    pooling: str = profiles.POOLING,
    precision: str = profiles.PRECISION,
    pre_relu: bool = profiles.PRE_RELU,
    device: str = profiles.DEVICE,
) -> Plan:
    """The grid of ``axes`` over ``fixed``, each cell checked and its pictures loaded (a missing one stops
    here), on the VGG-19 the other arguments describe."""
    cells = grid(axes, fixed)
    for cell in cells:
        _check(cell)
    model = ModelSpec.unbuilt(device, weights=weights_source(weights), pooling=pooling, precision=precision,
                              pre_relu=pre_relu)
    pictures = _Pictures()
    jobs = [_job(cell, pictures) for cell in cells]  # loads every picture: a missing one stops here
    for cell, job in zip(cells, jobs):
        _check_sides(cell, job)
    return Plan(cells, jobs, model)


def _plain(cell: dict) -> dict:
    """The settings as JSON values (layer tuples as lists, paths as text)."""
    return {k: list(v) if isinstance(v, tuple) else _text(v) for k, v in cell.items()}


def _text(value):
    return str(value) if isinstance(value, os.PathLike) else value


# --------------------------------------------------------------------------------------
# Running.


def sweep(
    output: str | os.PathLike,
    axes: Mapping[str, Sequence],
    *,
    weights: str = profiles.WEIGHTS,
    pooling: str = profiles.POOLING,
    precision: str = profiles.PRECISION,
    pre_relu: bool = profiles.PRE_RELU,
    device: str = profiles.DEVICE,
    executor=None,
    scheduler: str | None = None,
    threads: int | None = None,
    rows: Sequence[str] | None = None,
    columns: str | None = None,
    max_cells: int = MAX_CELLS,
    progress: bool | str = True,
    log=print,
    **fixed,
) -> SweepResult:
    """Run the grid of ``axes`` (name -> values) over ``fixed`` settings into the folder ``output``.

    ``weights``, ``pooling``, ``precision``, ``pre_relu`` and ``device``: the VGG-19 (see ``vgg.VGG19``).
    ``executor``: an executor object (kept open), or a name for ``executor_from`` (with ``scheduler``
    and ``threads``), started here and closed at the end. ``rows``/``columns``: swept axes for the
    contact sheet (default: the axis with the most values across, the others down; swept axes named in
    neither are added to the rows, so that every cell has its tile). A grid of more than ``max_cells``
    cells is refused. Everything that can be checked is checked before anything runs.
    """
    axes, repeated = distinct(axes)
    _check_count(axes, fixed, max_cells)
    work = plan(axes, fixed, weights=weights, pooling=pooling, precision=precision, pre_relu=pre_relu,
                device=device)
    asked = list(rows or [])
    rows, columns = sheet_axes(axes, rows, columns)
    folder = Path(output)
    check_place(folder, work.cells)
    if repeated:
        log(f"sweep: {' and '.join(repeated)} gave a value more than once: each value is one cell")
    if asked and rows != asked:
        log(f"sweep: the contact sheet's rows also show {_and(rows[len(asked):])}, so that every cell has its tile")
    store = Store(folder / CELLS, log=lambda line: log(f"sweep: {line}"), noun="finished cell", remember=False)
    keys: list[str] = []
    written: list[str] = []
    try:
        owned = executor is None or isinstance(executor, str)
        if owned:  # before any folder is made: a cluster that cannot be reached leaves nothing behind
            size = max(cell["size"] for cell in work.cells)
            executor = executor_from(executor, scheduler=scheduler, threads=threads, device=device, size=size,
                                     tasks=len(work.cells), log=log)
        try:
            keys += work.keys(executor.job_threads)
            records = _run(executor, store, work, keys, progress, log)
        finally:
            if owned:
                executor.close()
        return _summarize(folder, store, records, rows, columns, log, written)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(folder, store, keys, written)) from None


def _check_count(axes: Mapping[str, Sequence], fixed: Mapping[str, object], max_cells: int) -> None:
    """Refuse a grid of more than ``max_cells`` cells before it is even listed: a slip in a list of values
    can ask for days of work."""
    try:
        count = math.prod(len(values) for values in axes.values())
        steps = list(axes.get("steps") or [fixed.get("steps", DEFAULTS["steps"])])
        evaluations = f" ({count // len(steps) * sum(steps):,} evaluations)"
    except TypeError:  # values that are not lists, or steps that are not numbers: grid() and _check() say so
        return
    if count > max_cells:
        raise ValueError(f"This sweep has {count:,} cells{evaluations}, more than the {max_cells:,} a sweep runs "
                         f"unasked: to run it, give --max-cells {count} (max_cells={count}), or sweep fewer values.")


def check_place(folder: Path, cells: list[dict]) -> None:
    """Refuse, before any work, a folder that cannot be written (``files.check_folder``), or whose summary
    files would be written over an input picture."""
    check_folder(folder, "the sweep folder")
    if (folder / CELLS).exists() and not (folder / CELLS).is_dir():
        raise WriteError(f"{folder / CELLS} is a file where the sweep keeps its pictures: move it away, "
                         "or give another folder.")
    sources = dict.fromkeys(cell[role] for cell in cells for role in ("content", "style") if cell[role] is not None)
    for source in sources:
        for name in SUMMARY:
            if same_file(folder / name, resolve(source)):
                raise ValueError(f"The input {source} is the sweep's {name}, which the sweep writes: copy it "
                                 "elsewhere first, or give another folder.")


def _interrupted(folder: Path, store: Store, keys: list[str], written: list[str]) -> str:
    """What a stopped sweep wrote, in one sentence."""
    finished = sum(store.finished(key) for key in keys)
    cells = (f"{finished} of {len(keys)} cells are finished in {folder / CELLS}, and the same sweep run again "
             "reuses them" if finished else "no cell was finished")
    missing = [name for name in SUMMARY if name not in written]
    if not missing:
        return f"{cells}; {_and(written)} were written."
    return f"{cells}; {_and(missing)} {'was' if len(missing) == 1 else 'were'} not written."


def _and(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def _run(executor, store: Store, work: Plan, keys: list[str], progress, log) -> list[dict]:
    """Reuse finished cells, run the others; each cell's files are written as soon as it finishes."""
    found = store.found(keys)
    done = sum(key in found for key in keys)
    if done:
        log(f"sweep: {done} of {len(keys)} cells already done, reused")
    todo = len(set(keys) - set(found))
    if todo:
        pending = [cell for cell, key in zip(work.cells, keys) if key not in found]
        log(f"sweep: {todo} cells on {executor.name}: {_estimate(executor, work.model, pending)}")
    records: list[dict | None] = [None] * len(keys)
    notes = [{"settings": _plain(cell)} for cell in work.cells]
    outcomes = store.run(executor, work.model, work.jobs, keys, found=found, notes=notes, progress=progress,
                         description=f"{todo} cells")
    for index, outcome, reused in outcomes:
        cell, key = work.cells[index], keys[index]
        if isinstance(outcome, JobError):
            log(f"sweep: cell {index + 1} ({work.jobs[index].label}) failed: {outcome.error}")
            records[index] = {"key": key, "status": "failed", "error": str(outcome.error), "settings": _plain(cell)}
        else:
            records[index] = _record(key, cell, outcome, reused)
    return records


def _estimate(executor, model, cells: list[dict]) -> str:
    """The evaluations ``cells`` will take and, in this process, about how long: one evaluation is measured at
    the largest size, and the others are taken to cost in proportion to their pixels."""
    evaluations = sum(cell["steps"] for cell in cells)
    text = f"{evaluations:,} evaluations"
    if not isinstance(executor, InProcess) or len(cells) < 2:
        workers = getattr(executor, "workers", 1)
        return text + (f" over {workers} workers" if workers > 1 else "")
    size = max(cell["size"] for cell in cells)
    network = worker_model(model) if isinstance(model, ModelSpec) else model
    (per_evaluation,) = measure_threads(network, size, [executor.job_threads]).values()
    seconds = sum(cell["steps"] * per_evaluation * (cell["size"] / size) ** 2 for cell in cells)
    return f"{text}, about {_duration(seconds)} ({per_evaluation:.2g} s per evaluation at {size} px, measured now)"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _record(key: str, cell: dict, result, reused: bool) -> dict:
    """A finished cell as the summary files show it."""
    losses = result.final_losses
    return {
        "key": key,
        "status": "ok",
        "picture": f"{CELLS}/{key}.png",
        "settings": _plain(cell),
        "losses": {term: losses[term] for term in LOSS_TERMS if term in losses},
        "evaluations": result.evaluations,
        "seconds": result.seconds,
        "threads": result.params.get("threads"),
        "device": result.params.get("device"),
        "events": result.events,
        "reused": reused,
    }


# --------------------------------------------------------------------------------------
# Summary: CSV, JSON and the contact sheet.


def sheet_axes(axes: Mapping[str, Sequence], rows=None, columns=None) -> tuple[list[str], str | None]:
    """Columns: ``columns`` or the swept axis with the most values (of those not in ``rows``); rows: ``rows``,
    then every other swept axis, so that each cell has a tile of its own. An axis named twice is refused."""
    swept = swept_axes(axes)
    named = [*(rows or []), *([columns] if columns else [])]
    for name in named:
        if name not in swept:
            raise ValueError(f"{name!r} is not a swept axis: choose from {', '.join(swept) or 'none (one cell)'}.")
    twice = next((name for name in named if named.count(name) > 1), None)
    if twice:
        raise ValueError(f"The axis {twice!r} is named twice for the contact sheet: give each axis once, "
                         "as rows or as the columns.")
    rows = list(rows or [])
    if columns is None and [name for name in swept if name not in rows]:
        columns = max((name for name in swept if name not in rows), key=lambda name: len(axes[name]))
    rows += [name for name in swept if name != columns and name not in rows]
    return rows, columns


def _summarize(folder: Path, store: Store, records: list[dict], rows: list[str], columns: str | None, log,
               written: list[str]) -> SweepResult:
    """Write the summary files (``SUMMARY``), adding each name to ``written`` once it is there."""
    for index, record in enumerate(records):
        record["index"] = index
    with atomic_write(folder / "sweep.json", "w") as handle:
        json.dump(records, handle, indent=1)
    written.append("sweep.json")
    with atomic_write(folder / "sweep.csv", "w") as handle:
        handle.write(_csv(records))
    written.append("sweep.csv")
    sheet = _sheet(folder, store, records, rows, columns)
    written.append("contact_sheet.png")
    failed = sum(record["status"] != "ok" for record in records)
    log(f"sweep: {len(records) - failed} cells done, {failed} failed; {folder / 'sweep.csv'}"
        + (f", {sheet}" if sheet else ""))
    return SweepResult(records, folder, folder / "sweep.csv", folder / "sweep.json", sheet)


def _csv(records: list[dict]) -> str:
    heads = ["index", "status", "key", "picture", *AXES, *(f"{t}_loss" for t in LOSS_TERMS), "evaluations",
             "seconds", "threads", "device", "reused", "error"]
    text = io.StringIO()
    writer = csv.DictWriter(text, heads, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {name: record.get(name, "") for name in heads}
        for name, value in record["settings"].items():
            row[name] = ",".join(value) if isinstance(value, list) else ("" if value is None else value)
        for term, value in record.get("losses", {}).items():
            row[f"{term}_loss"] = value
        row["reused"] = bool(record.get("reused"))
        writer.writerow(row)
    return text.getvalue()


def _value_text(name: str, value) -> str:
    if isinstance(value, list):
        return f"{name} {'+'.join(value)}"
    if isinstance(value, float):
        return f"{name} {value:g}"
    return f"{name} {value}"


def _sheet(folder: Path, store: Store, records: list[dict], rows: list[str], columns: str | None) -> Path | None:
    """The contact sheet: one column per value of ``columns``, one row per combination of ``rows``."""
    def values(name):
        return list(dict.fromkeys(json.dumps(r["settings"][name]) for r in records))

    column_values = values(columns) if columns else ["null"]
    row_values = list(itertools.product(*(values(name) for name in rows)))
    tiles = [[None] * len(column_values) for _ in row_values]
    captions = [[""] * len(column_values) for _ in row_values]
    for record in records:
        settings = record["settings"]
        r = row_values.index(tuple(json.dumps(settings[name]) for name in rows))
        c = column_values.index(json.dumps(settings[columns])) if columns else 0
        if record["status"] == "ok":
            tiles[r][c] = load_image(store.picture(record["key"]))
            losses = record["losses"]
            captions[r][c] = " ".join(f"{t} {losses[t]:.2g}" for t in ("content", "style") if t in losses)
            captions[r][c] += f"\n{record['seconds']:.1f} s"
        else:
            captions[r][c] = "failed"
    row_labels = [", ".join(_value_text(n, json.loads(v)) for n, v in zip(rows, combo)) for combo in row_values]
    column_labels = [_value_text(columns, json.loads(v)) if columns else "" for v in column_values]
    figure = contact_sheet(tiles, row_labels, column_labels, captions)
    path = save_figure(figure, folder / "contact_sheet.png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path

