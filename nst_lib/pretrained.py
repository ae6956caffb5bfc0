"""Generators trained once and shipped with the package: list them, load them, use them.

Each shipped generator is two files in the package folder ``nst_lib/trained``:
``<name>.pt``, the network's weights in half precision (a state_dict), and
``<name>.json``, what it is and how it came to be: its style image and mode
("style" or "texture"), the recipe and the loss it was trained on, its training
photos and steps, the sha256 of its weights file, and its scores on the
held-out photos (``heldout``). Loading checks the checksum and builds the
network in float32. ``make generators`` retrains them all (docs/generators.md).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from . import keys, profiles
from .checkpoints import Training
from .files import atomic_write
from .generator import Generator, Recipe, seeded_noise, stylize

FOLDER = Path(__file__).resolve().parent / "trained"
FORMAT = "nst_lib.pretrained/1"
# A description keeps the training's loss history as means over this many steps.
HISTORY_EVERY = 10


class PretrainedError(ValueError):
    """A shipped generator is missing, unknown or damaged; the message says which and what to do."""


def available(folder: str | os.PathLike = FOLDER) -> list[dict]:
    """Every shipped generator's description (its JSON), sorted by name: "name", "style", "mode" ...;
    what a menu of instant pictures offers."""
    folder = Path(folder)
    return [description(path.stem, folder) for path in sorted(folder.glob("*.json"))]


def description(name: str, folder: str | os.PathLike = FOLDER) -> dict:
    """The description of the shipped generator ``name`` (its JSON)."""
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise PretrainedError(f"No shipped generator is called {name!r}: {_choices(folder)}.")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        raise PretrainedError(f"{path} cannot be read as JSON: reinstall the package, or run `make generators`.") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise PretrainedError(f"{path} is not a shipped generator's description ({FORMAT}): reinstall the package.")
    return info


def find(style: str, texture: bool = False, folder: str | os.PathLike = FOLDER) -> str:
    """The name of the shipped generator of ``style`` (a named style image) for style transfer, or for its
    texture when ``texture``."""
    mode = "texture" if texture else "style"
    for info in available(folder):
        if info["style"] == style and info["mode"] == mode:
            return info["name"]
    kind = "texture" if texture else "style-transfer"
    raise PretrainedError(
        f"No shipped {kind} generator for the style {style!r}: {_choices(folder)}; "
        "or train one with `nst train-generator` and give it with --checkpoint."
    )


def _choices(folder) -> str:
    shipped = [f"{info['name']} ({info['mode']})" for info in available(folder)]
    return "shipped are " + ", ".join(shipped) if shipped else "none is shipped in this installation"


def load(name: str, device: str | torch.device = "cpu", folder: str | os.PathLike = FOLDER) -> Generator:
    """The shipped generator ``name`` in float32, in eval mode on ``device``, after checking that its
    weights file is the one its description names (sha256)."""
    info = description(name, folder)
    path = Path(folder) / f"{name}.pt"
    if not path.is_file():
        raise PretrainedError(f"{path} is missing: reinstall the package, or run `make generators`.")
    found = keys.file_digest(path)
    if found != info["sha256"]:
        raise PretrainedError(
            f"{path} is damaged: its sha256 is {found[:12]}..., its description says {info['sha256'][:12]}...; "
            "reinstall the package, or run `make generators`."
        )
    network = Recipe(**info["recipe"]).network()
    state = torch.load(path, map_location="cpu", weights_only=True)
    network.load_state_dict({key: value.float() for key, value in state.items()})
    return network.to(device).eval()


@functools.lru_cache(maxsize=8)
def _loaded(name: str, device: str) -> Generator:
    return load(name, device)


def stylize_with(name: str, image: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """The shipped style-transfer generator ``name``'s picture of ``image`` (1, 3, H, W) in [0, 1], on the
    CPU (the network is loaded once per process and device)."""
    if description(name)["mode"] != "style":
        raise PretrainedError(f"{name} is a texture generator: it takes no picture; use texture_from({name!r}, ...).")
    return stylize(_loaded(name, str(device)), image)


def texture_from(name: str, shape: Sequence[int], seed: int = profiles.SEED,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """The shipped texture generator ``name``'s picture of ``shape`` (H, W) from the noise of ``seed``."""
    if description(name)["mode"] != "texture":
        raise PretrainedError(f"{name} is a style-transfer generator: give it a picture with stylize_with.")
    return stylize(_loaded(name, str(device)), seeded_noise(shape, seed))


def _averaged(history: Mapping[str, Sequence[float]], every: int) -> dict[str, list[float]]:
    """Each loss term's mean over every ``every`` steps (NaN steps, a warm-up's style term, left out)."""
    averaged = {}
    for name, values in history.items():
        means = []
        for start in range(0, len(values), every):
            window = [v for v in values[start : start + every] if math.isfinite(v)]
            means.append(sum(window) / len(window) if window else None)
        averaged[name] = means
    return averaged


def export(training: Training, name: str, style: str, *, training_photos: Sequence[str],
           held_out: Mapping, folder: str | os.PathLike = FOLDER) -> Path:
    """Write ``training``'s generator as the shipped generator ``name`` of the named style image ``style``:
    its weights in half precision and its description (recipe, loss, photos, steps, checksum and the
    ``held_out`` scores, see ``heldout``), both atomically. Returns the weights file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    state = {key: value.detach().cpu().half() for key, value in training.generator.state_dict().items()}
    with atomic_write(path) as handle:
        torch.save(state, handle)
    config = training.config
    info = {
        "format": FORMAT, "name": name, "style": style, "mode": training.mode,
        "recipe": config["recipe"], "loss": config["loss"], "steps": training.step,
        "training_photos": list(training_photos),
        "vgg": {key: config[key] for key in ("vgg_weights", "pooling", "pre_relu", "precision")},
        "training_seconds": training.seconds, "training_cpu_seconds": training.cpu_seconds,
        "sha256": keys.file_digest(path), "held_out": dict(held_out),
        "history_every": HISTORY_EVERY, "history": _averaged(training.history, HISTORY_EVERY),
    }
    with atomic_write(folder / f"{name}.json", "w") as handle:
        json.dump(info, handle, indent=1)
    return path
