"""Results kept on disk and found again by their key (``keys.job_key``).

A result is a key, a picture and a record, side by side in one folder:

- ``<key>.npy``: the image exactly as the optimization returned it (float32, (1, 3, H, W)), so that
  a result read back gives every figure the same pixels as the run that made it;
- ``<key>.png``: the same picture, to look at (and for a sweep's contact sheet);
- ``<key>.json``: the record: everything else ``optimize.Result`` holds (history, times,
  evaluations, seconds, events, params), a note from whoever asked for it (a sweep keeps its cell's
  settings there), the digests of both pictures and a digest of the record itself.

Each file is written atomically, the record last: a result is finished when its record is there and
everything agrees with it. A record that does not parse as a finished result, a picture that is
missing, no longer decodes or was replaced, a number that is not a number, or losses edited after
the fact (the digests no longer match) mean that the result is not finished: ``Store.run`` computes it
again and says so, once per batch.

``Store.run(executor, model, jobs, keys)`` runs a batch: a job whose key has a finished result is read
back, every other distinct key runs once on the executor, and each result is kept as soon as it
finishes, so that an interrupted batch keeps what finished.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from . import keys
from .files import atomic_write
from .images import save_image
from .jobs import Job, JobError
from .optimize import Result

RECORD_FORMAT = "nst_lib.result/1"
SUFFIXES = (".npy", ".png", ".json")  # in the order they are written
# How many of the results that cannot be trusted a message names (the others are counted).
NAMED = 3


class Untrusted(ValueError):
    """A kept result that cannot be trusted; the message says why."""


class Store:
    """The results kept in ``folder`` (made when the first one is kept).

    ``log``: where ``found`` says which kept results it could not trust (one line per batch), calling
    each a ``noun`` ("kept result", "finished cell"). ``remember``: keep every result read or kept in
    memory, so that the same key gives the same object (a notebook's figures); False for a sweep, whose
    cells can be many: its results' images are checked on disk and then let go (``image`` is None).
    """

    def __init__(self, folder: str | os.PathLike, log: Callable[[str], None] = print, noun: str = "kept result",
                 remember: bool = True):
        self.folder = Path(folder)
        self.log, self.noun, self.remember = log, noun, remember
        self._read: dict[str, Result] = {}  # what this process kept or read: the same object every time
        self._code: str | None = None

    def path(self, key: str, suffix: str) -> Path:
        """Where the file of ``key`` with ``suffix`` (".npy", ".png" or ".json") is."""
        return self.folder / f"{key}{suffix}"

    def picture(self, key: str) -> Path:
        """The picture of ``key``: always ``<folder>/<key>.png``, never a name read from a record."""
        return self.path(key, ".png")

    def finished(self, key: str) -> bool:
        """Whether ``key`` has a record (a quick look: ``get`` checks it)."""
        return self.path(key, ".json").is_file()

    def get(self, key: str) -> Result | None:
        """The finished result of ``key``, or None; one that cannot be trusted raises ``Untrusted``."""
        if key in self._read:
            return self._read[key]
        if not self.path(key, ".json").exists():
            return None
        result = _read(self.folder, key)
        if self.remember:
            self._read[key] = result
        else:
            result.image = None
        return result

    def put(self, key: str, result: Result, note: Mapping | None = None) -> None:
        """Keep ``result`` under ``key``: both pictures, then the record. A run stopped before its budget
        was spent is not kept (the same key asks for the whole run)."""
        if result.stopped:
            return
        image = result.image.detach().cpu().to(torch.float32).contiguous()
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path(key, ".npy")) as handle:
            np.save(handle, image.numpy(), allow_pickle=False)
        save_image(image, self.picture(key))
        record = {
            "format": RECORD_FORMAT,
            "key": key,
            "code": self.code,
            "result": {name: getattr(result, name) for name in RESULT_FIELDS},
            "note": dict(note or {}),
            "pictures": {suffix: keys.file_digest(self.path(key, suffix)) for suffix in (".npy", ".png")},
        }
        record["digest"] = keys.digest(record)
        with atomic_write(self.path(key, ".json"), "w") as handle:
            json.dump(record, handle, indent=1)
        if self.remember:
            self._read[key] = result

    def note(self, key: str) -> dict:
        """The note kept with the finished result of ``key`` (``get`` it first)."""
        return json.loads(self.path(key, ".json").read_text())["note"]

    @property
    def code(self) -> str:
        """The fingerprint of the library's code, recorded with each result (see ``carry``)."""
        if self._code is None:
            self._code = keys.code_fingerprint()
        return self._code

    def found(self, job_keys: Sequence[str]) -> dict[str, Result]:
        """The finished results among ``job_keys``, by key; says once (``log``) which kept results
        could not be trusted (they count as not finished)."""
        found, untrusted = {}, []
        for key in dict.fromkeys(job_keys):
            try:
                result = self.get(key)
            except Untrusted as reason:
                untrusted.append(f"{key}: {reason}")
                continue
            if result is not None:
                found[key] = result
        if untrusted:
            self.log(_untrusted(untrusted, self.noun))
        return found

    def run(
        self, executor, model, jobs: Sequence[Job], job_keys: Sequence[str], *, found: Mapping | None = None,
        notes: Sequence[Mapping] | None = None, **bar,
    ) -> Iterator[tuple[int, Result | JobError, bool]]:
        """Yield (index, Result or JobError, reused) for every job of the batch: first those whose key has
        a finished result (``found``, default: ``self.found(job_keys)``), then, as each finishes on
        ``executor`` (see ``jobs.InProcess``), the others; jobs with the same key run once. ``notes``: one
        per job, kept with its result; ``bar``: the executor's progress options."""
        found = self.found(job_keys) if found is None else found
        for index, key in enumerate(job_keys):
            if key in found:
                yield index, found[key], True
        todo = [key for key in dict.fromkeys(job_keys) if key not in found]
        if not todo:
            return
        first = {key: list(job_keys).index(key) for key in todo}
        for position, outcome in executor.run(model, [jobs[first[key]] for key in todo], **bar):
            key = todo[position]
            if not isinstance(outcome, JobError):
                self.put(key, outcome, notes[first[key]] if notes else None)
            for index in (i for i, k in enumerate(job_keys) if k == key):
                yield index, outcome, index != first[key]

    def carry(self, source: str | os.PathLike) -> int:
        """Bring into this store the results in ``source`` that this library's code made (a result of
        other code can never match a key again: keys hold the code), linked where the file system allows,
        else copied, never changing ``source``; return how many."""
        source = Path(source)
        carried = 0
        for record in sorted(source.glob("*.json")) if source.is_dir() else []:
            try:
                made_by = json.loads(record.read_text()).get("code")
            except (OSError, ValueError, AttributeError):
                continue
            key = record.stem
            if made_by != self.code or self.finished(key):
                continue
            self.folder.mkdir(parents=True, exist_ok=True)
            for suffix in SUFFIXES:
                if (source / f"{key}{suffix}").is_file():
                    _link_or_copy(source / f"{key}{suffix}", self.path(key, suffix))
            carried += 1
        return carried


# What a record keeps of a Result besides its image, and the type each must have.
RESULT_FIELDS = {
    "history": dict, "times": list, "evaluations": int, "seconds": float, "events": list, "stopped": bool,
    "best_index": int, "params": dict,
}
KINDS = {dict: "a table", list: "a list", int: "a whole number", float: "a number", bool: "true or false"}


def _read(folder: Path, key: str) -> Result:
    """The result of ``key`` in ``folder``, every file checked against the record; ``Untrusted`` says
    what does not agree."""
    try:
        record = json.loads((folder / f"{key}.json").read_text())
    except (OSError, ValueError):
        raise Untrusted("its record is not JSON") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or record.get("key") != key:
        raise Untrusted("its record is not the record of a finished result")
    if record.get("digest") != keys.digest({name: value for name, value in record.items() if name != "digest"}):
        raise Untrusted("its record was changed after it was written")
    pictures = record.get("pictures")
    for suffix in (".npy", ".png"):
        path = folder / f"{key}{suffix}"
        if not path.is_file():
            raise Untrusted(f"{path.name} is missing")
        if not isinstance(pictures, dict) or keys.file_digest(path) != pictures.get(suffix):
            raise Untrusted(f"{path.name} was changed after it was written")
    fields = _checked_fields(record.get("result"))
    return Result(image=_image(folder / f"{key}.npy"), **fields)


def _checked_fields(fields) -> dict:
    """A record's result fields, each of its type (numbers finite where they must be)."""
    if not isinstance(fields, dict) or set(fields) != set(RESULT_FIELDS):
        raise Untrusted("its record does not hold a whole result")
    for name, kind in RESULT_FIELDS.items():
        value = fields[name]
        if kind is float:
            fits = _number(value)
        else:
            fits = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not fits:
            raise Untrusted(f"its {name} is {value!r}, not {KINDS[kind]}")
    if fields["seconds"] < 0 or fields["evaluations"] < 0:
        raise Untrusted("its seconds or evaluations are below 0")
    if not all(_number(t) for t in fields["times"]):
        raise Untrusted("its times are not numbers")
    for name, values in fields["history"].items():
        if not isinstance(values, list) or not all(_number(v) for v in values):
            raise Untrusted(f"its {name} losses are not numbers")
    if not all(isinstance(event, str) for event in fields["events"]):
        raise Untrusted("its events are not sentences")
    return fields


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _image(path: Path) -> torch.Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        raise Untrusted(f"{path.name} is not an image array") from None
    if array.dtype != np.float32 or array.ndim != 4 or array.shape[:2] != (1, 3) or not np.isfinite(array).all():
        raise Untrusted(f"{path.name} is not an image (float32, 1 x 3 x H x W)")
    return torch.from_numpy(array)


def _untrusted(reasons: list[str], noun: str) -> str:
    """One sentence for the kept results that cannot be trusted."""
    named = "; ".join(reasons[:NAMED]) + (f"; and {len(reasons) - NAMED} more" if len(reasons) > NAMED else "")
    count = f"{len(reasons)} {noun}{'s' * (len(reasons) != 1)}"
    return f"{count} could not be trusted and {'are' if len(reasons) != 1 else 'is'} computed again ({named})."


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a second name of ``source`` (files here are replaced, never changed in place), or
    a copy where the file system takes no links; atomic either way."""
    spare = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    try:
        os.link(source, spare)
        os.replace(spare, target)
    except OSError:
        with atomic_write(target) as handle, open(source, "rb") as original:
            shutil.copyfileobj(original, handle)
    finally:
        spare.unlink(missing_ok=True)
