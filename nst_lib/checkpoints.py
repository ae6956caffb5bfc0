"""Generator checkpoints: writing, reading and checking the files ``training`` saves.

A checkpoint holds a ``Training``: the network's weights, the config that
shaped it (mode, recipe, loss, the VGG-19 and digests of its weights and of the
training images, see ``keys``), the step, the loss history and the time spent,
and, for resuming, Adam's state and the random generator's. It is written
atomically: a crash leaves the previous one intact. Reading checks every key
and the size of every tensor against the recipe before anything is built, so a
damaged or foreign file is one sentence, never a traceback or an absurd
allocation.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .files import atomic_write, check_writable
from .generator import Generator, Recipe
from .losses import LossSpec

CHECKPOINT_FORMAT = "nst_lib.generator/2"
# What checkpoints written before these recipe fields existed were trained with.
LEGACY_RECIPE = {"scales": (1.0, 1.0), "schedule": "constant", "warmup": 0, "upsample": "nearest"}


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the training asked for; the message says why."""


@dataclass
class Training:
    """A trained (or partly trained) generator and how it came to be.

    ``generator``: the network, in eval mode. ``config``: every setting that
    shaped it: "mode" ("style" or "texture"), "recipe", "loss", the VGG-19
    and a digest of the images. ``step``: Adam steps taken. ``history``: per
    step, each loss term (mean over the batch, unweighted) and the weighted
    ``total`` of the loss trained on (during the warm-up, the content term
    alone: the style term is NaN). ``seconds``: training time over all
    sessions; ``cpu_seconds``: the process's CPU time over them (all threads).
    """

    generator: Generator
    config: dict
    step: int
    history: dict[str, list[float]]
    seconds: float
    cpu_seconds: float = 0.0
    optimizer_state: dict | None = field(default=None, repr=False)
    rng_state: torch.Tensor | None = field(default=None, repr=False)

    @property
    def mode(self) -> str:
        return self.config["mode"]

    @property
    def loss(self) -> LossSpec:
        return LossSpec.from_dict(self.config["loss"])

    @property
    def recipe(self) -> Recipe:
        return Recipe(**self.config["recipe"])

    @property
    def loss_fell(self) -> bool:
        """Whether the last steps' mean total loss is below the first steps' (after the warm-up)."""
        total = self.history.get("total", [])[self.recipe.warmup :]
        window = max(1, len(total) // 10)
        return len(total) > 1 and sum(total[-window:]) < sum(total[:window])

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.step, 1)


def check_checkpoint_path(path: str | os.PathLike, resume: bool = False) -> Path:
    """Raise a CheckpointError (or a ``files.WriteError``) unless ``path`` can take a training's checkpoints:
    an existing checkpoint file to resume, or else a new file (an existing one is never overwritten),
    in a folder that takes files."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: give the path of a checkpoint file, such as {path / 'style.pt'}.")
    if resume and not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}.")
    if not resume and path.exists():
        raise CheckpointError(
            f"{path} already exists: resume it (resume=True, or --resume), or choose another path to start afresh."
        )
    return check_writable(path)


def save_checkpoint(
    path: str | os.PathLike,
    training: Training,
    optimizer: torch.optim.Optimizer | None = None,
    rng: torch.Generator | None = None,
) -> Path:
    """Write the generator, its config, step, history and (for resuming) the
    Adam and random-number states to ``path``, atomically."""
    path = Path(path)
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": training.config,
        "step": training.step,
        "seconds": training.seconds,
        "cpu_seconds": training.cpu_seconds,
        "history": training.history,
        "generator": {name: value.detach().cpu() for name, value in training.generator.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else training.optimizer_state,
        "rng": rng.get_state() if rng is not None else training.rng_state,
    }
    with atomic_write(path) as handle:
        torch.save(state, handle)
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Training:
    """A generator saved by ``train_generator`` or ``save_checkpoint``, in eval mode on ``device``."""
    state = _read_checkpoint(path)
    network = Recipe(**state["config"]["recipe"]).network()
    network.load_state_dict(state["generator"])
    return Training(
        generator=network.to(device).eval(),
        config=state["config"],
        step=state["step"],
        history=state["history"],
        seconds=state["seconds"],
        cpu_seconds=state.get("cpu_seconds", 0.0),
        optimizer_state=state["optimizer"],
        rng_state=state["rng"],
    )


def _read_checkpoint(path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: give the path of a checkpoint file in it (a .pt file written by "
                              "train-generator).")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"{path} is not a generator checkpoint (it cannot be read by torch.load).") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a generator checkpoint written by nst_lib ({CHECKPOINT_FORMAT}).")
    problem = _checkpoint_problem(state)
    if problem:
        raise CheckpointError(f"{path} is damaged: {problem}; train again, or use another checkpoint.")
    config = state["config"]
    # Checkpoints that do not say were trained when conv layers were read before the ReLU; those written
    # before checkpoints kept the digest of the VGG-19's weights (see keys.weights_digest) have None.
    state["config"] = {**config, "pre_relu": config.get("pre_relu", True), "vgg_digest": config.get("vgg_digest"),
                       "recipe": {**LEGACY_RECIPE, **config["recipe"]}}
    return state


CHECKPOINT_KEYS = ("config", "step", "seconds", "history", "generator", "optimizer", "rng")


def _checkpoint_problem(state: dict) -> str | None:
    """What is wrong with a checkpoint's content (every key, and the size of every tensor), or None."""
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        return f"it has no {', '.join(map(repr, missing))}"
    config = state["config"]
    if not isinstance(config, dict) or config.get("mode") not in ("style", "texture"):
        return "its config names no mode ('style' or 'texture')"
    try:
        recipe = Recipe(**config["recipe"])
        recipe.check_crops(LossSpec.from_dict(config["loss"]))
    except (KeyError, TypeError, ValueError) as error:
        return f"its recipe or loss is not valid ({str(error).rstrip('.') or type(error).__name__})"
    step, seconds, history = state["step"], state["seconds"], state["history"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"its step is {step!r}, not a whole number"
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        return f"its training time is {seconds!r}, not a number of seconds"
    cpu_seconds = state.get("cpu_seconds", 0.0)
    if isinstance(cpu_seconds, bool) or not isinstance(cpu_seconds, (int, float)) or not 0 <= cpu_seconds < math.inf:
        return f"its CPU time is {cpu_seconds!r}, not a number of seconds"
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        return "its loss history is not a table of lists"
    if state["optimizer"] is not None and not isinstance(state["optimizer"], dict):
        return "its optimizer state is not a dictionary"
    if state["rng"] is not None and not (isinstance(state["rng"], torch.Tensor) and state["rng"].dtype == torch.uint8):
        return "its random-number state is not a byte tensor"
    return _generator_problem(state["generator"], recipe)


def _generator_problem(tensors, recipe: Recipe) -> str | None:
    """How the saved network's tensors differ from the network its recipe describes, or None."""
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        return "its generator is not a state_dict of tensors"
    if recipe.residual_blocks > len(tensors):  # each block has tensors: no need to build an absurd network
        return f"its recipe's {recipe.residual_blocks} residual blocks do not match its {len(tensors)} tensors"
    with torch.device("meta"):  # shapes only, no memory, whatever sizes the recipe claims
        network = recipe.network()
    expected = {name: tuple(value.shape) for name, value in network.state_dict().items()}
    odd = set(expected) ^ set(tensors)
    if odd:
        return f"its generator's tensors do not fit its recipe ({min(odd)!r} is missing or extra)"
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            found = tuple(tensors[name].shape)
            return f"its generator's {name!r} has shape {found}, and the network of its recipe needs {shape}"
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            return f"its generator's {name!r} holds NaN or infinite values"
    return None


def resumed(path: Path, config: dict, network: Generator, optimizer, rng: torch.Generator) -> Training:
    """The training state saved at ``path``, loaded into ``network``, ``optimizer`` and ``rng``."""
    state = _read_checkpoint(path)
    steps = config["recipe"]["steps"]
    if state["step"] > steps:
        raise CheckpointError(
            f"{path} already holds step {state['step']}, beyond the {steps} steps asked for: "
            f"ask for more than {state['step']} steps to train on."
        )
    saved, now = _settings(state["config"]), _settings(config)
    if saved["vgg_digest"] is None:  # a checkpoint from before the weights' digest was kept: nothing to compare
        saved["vgg_digest"] = now["vgg_digest"]
    different = [key for key in now if saved.get(key) != now[key]]
    if different:
        key = different[0]
        what = {"images": "images", "vgg_digest": "VGG-19 weights (the same name, other contents)"}.get(
            key, f"{key} ({saved.get(key)!r}, now {now[key]!r})")
        raise CheckpointError(
            f"{path} was trained with other {what}: "
            "resume with the same settings, or start afresh with another checkpoint path."
        )
    network.load_state_dict(state["generator"])
    try:
        optimizer.load_state_dict(state["optimizer"])
        rng.set_state(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise CheckpointError(
            f"{path} cannot be resumed: its optimizer or random-number state is missing or damaged."
        ) from None
    return Training(network, config, step=state["step"], history=state["history"], seconds=state["seconds"],
                    cpu_seconds=state.get("cpu_seconds", 0.0))


def _settings(config: dict) -> dict:
    """A config flattened to the settings that must match for a resume (all but the recipe's steps and
    the precision: a training may go on on another device)."""
    flat = {key: value for key, value in config.items() if key not in ("recipe", "loss", "precision")}
    flat.update(config["loss"])
    flat.update({key: value for key, value in config["recipe"].items() if key != "steps"})
    return flat
