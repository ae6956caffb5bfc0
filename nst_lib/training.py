"""Training feed-forward generators (see ``generator``), and their checkpoints.

Training draws random square crops from a set of content images, each at a
random scale and place and flipped left-right at random, or noise for a
texture, and takes Adam steps on the loss of a ``LossSpec`` (the same loss
``transfer`` optimizes per image), with a learning rate that decays along a
cosine. Where the device runs bfloat16 natively (as the VGG-19 does, see
``vgg.fast_bfloat16``) the generator's convolutions run in bfloat16 under
autocast while its weights and Adam's state stay float32.

All randomness comes from one seeded generator whose state is saved in each
checkpoint with the network, the Adam state and the loss history, so an
interrupted training resumed from its last checkpoint ends with the same
network as one that never stopped. Checkpoints are written atomically: a
crash leaves the previous one intact.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from . import profiles
from .files import atomic_write, check_writable
from .generator import UPSAMPLINGS, Generator, noise, run_generator
from .images import MAX_SIZE, MIN_SIZE, check_image
from .losses import LossSpec, PerceptualLoss
from .optimize import check_learning_rate, check_steps, check_styles, progress_bar
from .vgg import VGG19, min_image_side

CHECKPOINT_FORMAT = "nst_lib.generator/2"
# Format 1 kept the loss and recipe settings flat in the config; reading one converts it.
OLD_CHECKPOINT_FORMAT = "nst_lib.generator/1"
_FULL = profiles.PROFILES["full"]


SCHEDULES = ("cosine", "constant")
FINAL_LR_FRACTION = 0.01
# What checkpoints written before these recipe fields existed were trained with.
LEGACY_RECIPE = {"scales": (1.0, 1.0), "schedule": "constant", "warmup": 0, "upsample": "nearest"}


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the training asked for; the message says why."""


@dataclass(frozen=True)
class Recipe:
    """How a generator is trained (the loss apart): the network's size, Adam and the crops.

    ``steps`` counts Adam steps, each over ``batch`` square crops of
    ``crop_size`` px; ``seed`` fixes the network's first weights, the crops and
    the noise. ``warmup``: the first steps train on the content loss alone (the
    network learns to give the photograph back) before the style is added.
    ``upsample``: see ``Generator``. Defaults are the ``full`` profile's.
    """

    steps: int = _FULL.generator_steps
    batch: int = _FULL.generator_batch
    crop_size: int = _FULL.generator_size
    lr: float = profiles.GENERATOR_LR
    seed: int = profiles.SEED
    channels: int = profiles.GENERATOR_CHANNELS
    residual_blocks: int = profiles.RESIDUAL_BLOCKS
    scales: tuple[float, float] = profiles.GENERATOR_SCALES
    schedule: str = profiles.GENERATOR_SCHEDULE
    warmup: int = profiles.GENERATOR_WARMUP
    upsample: str = profiles.GENERATOR_UPSAMPLE

    def __post_init__(self):
        for name in ("steps", "batch", "channels"):
            check_steps(getattr(self, name), name)
        blocks = self.residual_blocks
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
            raise ValueError(f"residual_blocks must be a whole number of at least 0, got {blocks!r}.")
        object.__setattr__(self, "lr", check_learning_rate(self.lr))
        object.__setattr__(self, "scales", _checked_scales(self.scales))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown learning-rate schedule {self.schedule!r}: choose {' or '.join(SCHEDULES)}.")
        warmup = self.warmup
        if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < self.steps:
            raise ValueError(f"warmup must be a whole number from 0 to fewer than the {self.steps} steps, got {warmup!r}.")
        if self.upsample not in UPSAMPLINGS:
            raise ValueError(f"Unknown upsampling {self.upsample!r}: choose {' or '.join(UPSAMPLINGS)}.")

    def network(self) -> Generator:
        """A generator of this recipe's shape (its first weights from torch's global random state)."""
        return Generator(self.channels, self.residual_blocks, self.upsample)

    def lr_at(self, step: int) -> float:
        """Adam's learning rate for step ``step`` (0-based): ``lr`` throughout, or from ``lr`` down
        along half a cosine to ``lr / 100`` at the last step."""
        if self.schedule == "constant":
            return self.lr
        progress = step / max(self.steps - 1, 1)
        floor = self.lr * FINAL_LR_FRACTION
        return floor + (self.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0))) / 2

    def check_crops(self, loss: LossSpec) -> None:
        """Raise a ValueError when the crops are too small for the loss's deepest layer."""
        smallest = max(min_image_side(loss.layers), MIN_SIZE)
        size = self.crop_size
        if isinstance(size, bool) or not isinstance(size, int) or not smallest <= size <= MAX_SIZE:
            raise ValueError(
                f"crop_size must be a whole number from {smallest} px (for these layers) to {MAX_SIZE} px, "
                f"got {size!r}."
            )


def _checked_scales(scales) -> tuple[float, float]:
    """(smallest, largest) scale of the crops: numbers with 0 < smallest <= largest <= 1."""
    try:
        low, high = (float(value) for value in scales)
    except (TypeError, ValueError):
        raise ValueError(f"scales must be two numbers (smallest, largest), got {scales!r}.") from None
    if not 0 < low <= high <= 1:
        raise ValueError(f"scales must satisfy 0 < smallest <= largest <= 1, got ({low:g}, {high:g}).")
    return low, high


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


def generator_loss(**changes) -> LossSpec:
    """The loss generators train on by default: ``LossSpec()`` with the generators' style and total
    variation weights (``profiles``), and any ``changes``."""
    return LossSpec(style_weight=profiles.GENERATOR_STYLE_WEIGHT, tv_weight=profiles.GENERATOR_TV_WEIGHT, **changes)


def random_crops(
    images: Sequence[torch.Tensor],
    count: int,
    size: int,
    generator: torch.Generator,
    scales: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """``count`` square crops of ``size`` px (count, 3, size, size): each from an image chosen
    at random, at a scale drawn log-uniformly from ``scales`` (1: the image's own pixels; 1/2: a
    square of twice ``size``, halved), at a random place, flipped left-right half of the time.
    A square larger than the image's shorter side is cut at that side."""
    low, high = scales
    crops = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        height, width = image.shape[-2:]
        scale = low
        if low < high:
            scale = math.exp(math.log(low) + math.log(high / low) * float(torch.rand(1, generator=generator)))
        side = min(round(size / scale), height, width) if scale < 1 else size
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        crop = image[..., top : top + side, left : left + side]
        if side != size:
            crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if bool(torch.rand(1, generator=generator) < 0.5):
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.cat(crops)


def train_generator(
    styles: torch.Tensor | Sequence[torch.Tensor],
    contents: Sequence[torch.Tensor] = (),
    *,
    model: VGG19 | None = None,
    loss: LossSpec | None = None,
    recipe: Recipe | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = profiles.CHECKPOINT_EVERY,
    resume: bool = False,
    progress: bool | str = True,
    description: str = "training",
    callback: Callable[[Training], None] | None = None,
) -> Training:
    """Train a generator with Adam on ``loss`` (default ``generator_loss()``).

    With ``contents`` (images (1, 3, H, W) in [0, 1]), a style-transfer
    generator: it learns ``G(crop)`` for random crops of them, against each
    crop's own content and the style. Images whose shorter side is below the
    crop size are scaled up to it. Without contents, a texture generator:
    ``G(noise)`` against the style alone (the content weight is ignored).

    ``checkpoint``: where to save the state every ``checkpoint_every`` steps
    and at the end (atomically). ``resume``: continue from that checkpoint,
    which must come from the same settings and images (only the recipe's
    ``steps`` may grow); without it an existing checkpoint is an error rather
    than overwritten. ``callback(training)`` runs after every step (its time
    counts as training time).
    """
    styles = check_styles(styles)
    contents = [check_image(content, f"contents[{i}]") for i, content in enumerate(contents)]
    mode = "style" if contents else "texture"
    loss, recipe = _checked_settings(mode, styles, loss, recipe)
    checkpoint_every = check_steps(checkpoint_every, "checkpoint_every")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint to resume from.")
    if checkpoint is not None:
        check_checkpoint_path(checkpoint, resume)
    model = model if model is not None else VGG19()
    bfloat16 = model.uses_bfloat16(model.device)  # the generator runs in the precision the VGG-19 runs in
    contents = [_at_least(image, recipe.crop_size) for image in contents]
    config = {
        "mode": mode,
        "recipe": asdict(recipe),
        "loss": loss.to_dict(),
        "vgg_weights": model.weights,
        "pooling": model.pooling,
        "pre_relu": model.pre_relu,
        "images": _fingerprint(styles, contents),
        "content_images": len(contents),
        "precision": "bfloat16" if bfloat16 else "float32",
    }
    state, optimizer, rng = _start(config, model.device, checkpoint, resume)
    objective = PerceptualLoss(loss, model, None, styles)
    # The warm-up's loss reads the content layers only: no style term to compute and throw away.
    warmup = PerceptualLoss(loss.replace(style_weight=0.0), model, None, styles) if recipe.warmup else None
    bar = progress_bar(progress, recipe.steps, description)
    bar.update(state.step)
    started, seconds_before = time.perf_counter(), state.seconds
    cpu_started, cpu_before = time.process_time(), state.cpu_seconds
    try:
        while state.step < recipe.steps:
            inputs = _inputs(contents, recipe, rng).to(model.device)
            lr = recipe.lr_at(state.step)
            terms, total = train_step(
                state.generator, optimizer, warmup if state.step < recipe.warmup else objective, inputs,
                step=state.step, lr=lr, bfloat16=bfloat16,
            )
            state.step += 1
            for name in objective.spec.weights():
                state.history.setdefault(name, []).append(float(terms[name].detach()) if name in terms else math.nan)
            state.history.setdefault("total", []).append(float(total.detach()))
            state.seconds = seconds_before + time.perf_counter() - started
            state.cpu_seconds = cpu_before + time.process_time() - cpu_started
            bar.update(1)
            if state.step % 10 == 0:
                bar.set_postfix(loss=f"{state.history['total'][-1]:.3g}")
            if checkpoint is not None and (state.step % checkpoint_every == 0 or state.step == recipe.steps):
                save_checkpoint(checkpoint, state, optimizer, rng)
            if callback is not None:
                callback(state)
    finally:
        bar.close()
        state.generator.eval()
    return state


def _inputs(contents: list[torch.Tensor], recipe: Recipe, rng: torch.Generator) -> torch.Tensor:
    """The next batch: crops of the content images, or noise for a texture generator."""
    if contents:
        return random_crops(contents, recipe.batch, recipe.crop_size, rng, recipe.scales)
    return noise(recipe.batch, (recipe.crop_size, recipe.crop_size), rng)


def _checked_settings(mode: str, styles, loss: LossSpec | None, recipe: Recipe | None) -> tuple[LossSpec, Recipe]:
    if not styles:
        raise ValueError("No style image given: a generator learns one style (or a blend).")
    loss = generator_loss() if loss is None else loss
    if mode == "texture" and loss.content_weight > 0:
        loss = loss.replace(content_weight=0.0)
    if loss.style_blend is not None and len(loss.style_blend) != len(styles):
        raise ValueError(
            f"Got {len(loss.style_blend)} blend weights for {len(styles)} style images: give one per style."
        )
    recipe = Recipe() if recipe is None else recipe
    if recipe.warmup and (mode == "texture" or loss.content_weight == 0):
        recipe = replace(recipe, warmup=0)  # nothing to give back: the style is trained from the first step
    recipe.check_crops(loss)
    return loss, recipe


def _start(config: dict, device, checkpoint, resume: bool):
    """A fresh network, Adam and random generator, or those saved in ``checkpoint`` when resuming."""
    recipe = Recipe(**config["recipe"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        network = recipe.network().to(device).train()
    rng = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=recipe.lr)
    state = Training(network, config, step=0, history={}, seconds=0.0)
    if checkpoint is not None and resume:
        state = _resumed(Path(checkpoint), config, network, optimizer, rng)
    return state, optimizer, rng


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


def train_step(
    network: Generator, optimizer, objective: PerceptualLoss, inputs: torch.Tensor, *, step: int, lr: float,
    bfloat16: bool,
):
    """One Adam step at learning rate ``lr`` on a batch (the ``step``-th, 0-based), the generator in
    bfloat16 under autocast when ``bfloat16``; returns the unweighted terms and the weighted total."""
    objective.set_content(inputs)
    terms = objective(run_generator(network, inputs, bfloat16))
    weights = objective.spec.weights()
    total = sum(weights[name] * value for name, value in terms.items())
    if not torch.isfinite(total):
        raise ValueError(
            f"The training loss became {float(total)} at step {step + 1}: start again with a lower learning rate."
        )
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return terms, total


def _at_least(image: torch.Tensor, side: int) -> torch.Tensor:
    """``image`` scaled up (aspect kept) so that its shorter side is at least ``side``."""
    height, width = image.shape[-2:]
    if min(height, width) >= side:
        return image
    scale = side / min(height, width)
    shape = (max(side, math.ceil(height * scale)), max(side, math.ceil(width * scale)))
    return F.interpolate(image, size=shape, mode="bilinear", align_corners=False).clamp(0, 1)


def _fingerprint(styles, contents) -> str:
    """A short digest of the training images, to refuse resuming on other ones."""
    digest = hashlib.sha256()
    for image in [*styles, *contents]:
        digest.update(str(tuple(image.shape)).encode())
        digest.update(image.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------
# Checkpoints.


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
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise CheckpointError(f"{path} is not a generator checkpoint (it cannot be read by torch.load).") from None
    if isinstance(state, dict) and state.get("format") == OLD_CHECKPOINT_FORMAT:
        try:
            state = {**state, "format": CHECKPOINT_FORMAT, "config": _upgraded(state["config"])}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CheckpointError(f"{path} is damaged: its {OLD_CHECKPOINT_FORMAT} settings are incomplete.") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a generator checkpoint written by nst_lib ({CHECKPOINT_FORMAT}).")
    problem = _checkpoint_problem(state)
    if problem:
        raise CheckpointError(f"{path} is damaged: {problem}; train again, or use another checkpoint.")
    config = state["config"]
    # Checkpoints that do not say were trained when conv layers were read before the ReLU.
    state["config"] = {**config, "pre_relu": config.get("pre_relu", True),
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


def _upgraded(config: dict) -> dict:
    """A format-1 config (loss and recipe settings side by side) in today's shape."""
    config = dict(config)
    loss = LossSpec.from_dict({name: config.pop(name) for name in LossSpec.__dataclass_fields__ if name in config})
    recipe = {name: config.pop(name) for name in Recipe.__dataclass_fields__ if name in config}
    recipe = Recipe(**{**LEGACY_RECIPE, **recipe})
    mode, vgg_weights = config.pop("mode"), config.pop("weights")
    return {"mode": mode, "recipe": asdict(recipe), "loss": loss.to_dict(), "vgg_weights": vgg_weights, **config}


def _resumed(path: Path, config: dict, network: Generator, optimizer, rng: torch.Generator) -> Training:
    """The training state saved at ``path``, loaded into ``network``, ``optimizer`` and ``rng``."""
    state = _read_checkpoint(path)
    steps = config["recipe"]["steps"]
    if state["step"] > steps:
        raise CheckpointError(
            f"{path} already holds step {state['step']}, beyond the {steps} steps asked for: "
            f"ask for more than {state['step']} steps to train on."
        )
    saved, now = _settings(state["config"]), _settings(config)
    different = [key for key in now if saved.get(key) != now[key]]
    if different:
        key = different[0]
        what = "images" if key == "images" else f"{key} ({saved.get(key)!r}, now {now[key]!r})"
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
