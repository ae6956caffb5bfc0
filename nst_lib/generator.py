"""Feed-forward generators: style transfer and texture synthesis in one pass.

Johnson et al. (2016) train an image transformation network once, with Adam,
on the same content and style losses that Gatys et al. optimize per image;
afterwards ``G(content)`` stylizes a picture in a single forward pass. With the
style loss alone and noise as input (Ulyanov et al. 2016), the same network
learns to synthesize the style's texture: ``G(noise)``.

The network: reflection-padded 9x9 convolution, two stride-2 downsamplings,
residual blocks, two nearest-neighbour upsamplings each followed by a
convolution (no transposed convolutions, so no checkerboard), a 9x9
convolution out and a sigmoid into [0, 1]; instance normalization throughout.
It is fully convolutional: trained on small crops, it runs on any size.

Training draws random square crops (flipped left-right at random) from a set
of content images, or noise for a texture. All randomness comes from one
seeded generator whose state is saved in each checkpoint with the network, the
Adam state and the loss history, so an interrupted training resumed from its
last checkpoint ends with the same network as one that never stopped.
Checkpoints are written atomically: a crash leaves the previous one intact.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import profiles
from .files import atomic_write
from .images import MIN_SIZE
from .losses import STYLE_SCALE, ContentLoss, StyleLoss, perceptual_objective, total_variation
from .optimize import check_steps, check_weight, progress_bar
from .vgg import VGG19, check_layers, min_image_side, pick_device

CHECKPOINT_FORMAT = "nst_lib.generator/1"
# The network downsamples twice by 2: sides are padded to a multiple of this.
STRIDE = 4
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the training asked for; the message says why."""


# --------------------------------------------------------------------------------------
# The network.


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    # Reflection padding: zero padding would darken every border.
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride))


def _conv_norm_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, upsample: bool = False):
    layers = [nn.Upsample(scale_factor=2, mode="nearest")] if upsample else []
    layers += [
        _conv(in_channels, out_channels, kernel, stride),
        nn.InstanceNorm2d(out_channels, affine=True),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance normalization, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_norm_relu(channels, channels, 3),
            _conv(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Johnson et al.'s image transformation network.

    ``channels``: width of the first layer (Johnson et al.: 32), doubled at
    each of the two downsamplings. ``residual_blocks``: at the lowest
    resolution (Johnson et al.: 5).
    """

    def __init__(self, channels: int = profiles.GENERATOR_CHANNELS, residual_blocks: int = profiles.RESIDUAL_BLOCKS):
        super().__init__()
        c = channels
        self.channels, self.residual_blocks = channels, residual_blocks
        self.layers = nn.Sequential(
            _conv_norm_relu(3, c, 9),
            _conv_norm_relu(c, 2 * c, 3, stride=2),
            _conv_norm_relu(2 * c, 4 * c, 3, stride=2),
            *[ResidualBlock(4 * c) for _ in range(residual_blocks)],
            _conv_norm_relu(4 * c, 2 * c, 3, upsample=True),
            _conv_norm_relu(2 * c, c, 3, upsample=True),
            _conv(c, 3, 9),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1]; H and W of at least 16 px."""
        height, width = images.shape[-2:]
        if min(height, width) < MIN_SIZE:
            raise ValueError(f"The generator needs images of at least {MIN_SIZE} px a side, got {width}x{height}.")
        pad_h, pad_w = -height % STRIDE, -width % STRIDE
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect")
        return torch.sigmoid(self.layers(images))[..., :height, :width]


def noise(count: int, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
    """The input of a texture generator: uniform noise (count, 3, H, W) in [0, 1]."""
    return torch.rand((count, 3, *shape), generator=generator)


def random_crops(images: Sequence[torch.Tensor], count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` square crops of ``size`` px (count, 3, size, size): each from an image
    chosen at random, at a random place, flipped left-right half of the time."""
    crops = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        height, width = image.shape[-2:]
        top = int(torch.randint(height - size + 1, (1,), generator=generator))
        left = int(torch.randint(width - size + 1, (1,), generator=generator))
        crop = image[..., top : top + size, left : left + size]
        if bool(torch.rand(1, generator=generator) < 0.5):
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.cat(crops)


# --------------------------------------------------------------------------------------
# Training.


@dataclass
class Training:
    """A trained (or partly trained) generator and how it came to be.

    ``generator``: the network, in eval mode. ``config``: every setting that
    shaped it (see ``train_generator``). ``step``: Adam steps taken.
    ``history``: per step, each loss term (mean over the batch, unweighted)
    and the weighted ``total``. ``seconds``: training time over all sessions.
    """

    generator: Generator
    config: dict
    step: int
    history: dict[str, list[float]]
    seconds: float
    optimizer_state: dict | None = field(default=None, repr=False)
    rng_state: torch.Tensor | None = field(default=None, repr=False)

    @property
    def mode(self) -> str:
        return self.config["mode"]

    @property
    def loss_fell(self) -> bool:
        """Whether the last steps' mean total loss is below the first steps'."""
        total = self.history.get("total", [])
        window = max(1, len(total) // 10)
        return len(total) > 1 and sum(total[-window:]) < sum(total[:window])

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.step, 1)


def train_generator(
    styles: torch.Tensor | Sequence[torch.Tensor],
    contents: Sequence[torch.Tensor] = (),
    *,
    model: VGG19 | None = None,
    steps: int = profiles.PROFILES["full"].generator_steps,
    batch: int = profiles.PROFILES["full"].generator_batch,
    crop_size: int = profiles.PROFILES["full"].generator_size,
    lr: float = profiles.GENERATOR_LR,
    seed: int = profiles.SEED,
    style_blend: Sequence[float] | None = None,
    content_layers: Sequence[str] = profiles.CONTENT_LAYERS,
    style_layers: Sequence[str] = profiles.STYLE_LAYERS,
    content_weight: float = profiles.CONTENT_WEIGHT,
    style_weight: float = profiles.STYLE_WEIGHT,
    tv_weight: float = profiles.TV_WEIGHT,
    channels: int = profiles.GENERATOR_CHANNELS,
    residual_blocks: int = profiles.RESIDUAL_BLOCKS,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = profiles.CHECKPOINT_EVERY,
    resume: bool = False,
    progress: bool | str = True,
    description: str = "training",
) -> Training:
    """Train a generator with Adam on the losses of ``transfer``.

    With ``contents`` (images (1, 3, H, W) in [0, 1]), a style-transfer
    generator: it learns ``G(crop)`` for random ``crop_size`` crops of them,
    against each crop's own content and the style. Images whose shorter side
    is below ``crop_size`` are scaled up to it. Without contents, a texture
    generator: ``G(noise)`` against the style alone (``content_weight`` is
    ignored). The objective and its weights are those of ``transfer``.

    ``steps`` counts Adam steps, each over ``batch`` crops. ``checkpoint``:
    where to save the state every ``checkpoint_every`` steps and at the end
    (atomically). ``resume``: continue from that checkpoint, which must come
    from the same settings and images (``steps`` may grow); without it an
    existing checkpoint is an error rather than overwritten.
    """
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    contents = list(contents)
    mode = "style" if contents else "texture"
    if not styles:
        raise ValueError("No style image given: a generator learns one style (or a blend).")
    steps = check_steps(steps)
    batch = check_steps(batch, "batch")
    checkpoint_every = check_steps(checkpoint_every, "checkpoint_every")
    channels = check_steps(channels, "channels")
    if isinstance(residual_blocks, bool) or not isinstance(residual_blocks, int) or residual_blocks < 0:
        raise ValueError(f"residual_blocks must be a whole number of at least 0, got {residual_blocks!r}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"The learning rate must be a positive number, got {lr!r}.")
    content_weight = check_weight(content_weight, "content_weight") if mode == "style" else 0.0
    style_weight = check_weight(style_weight, "style_weight")
    tv_weight = check_weight(tv_weight, "tv_weight")
    if content_weight + style_weight == 0:
        raise ValueError("Both content_weight and style_weight are 0: there is nothing to train for.")
    content_layers = check_layers(content_layers) if content_weight > 0 else []
    style_layers = check_layers(style_layers) if style_weight > 0 else []
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    smallest = max(min_image_side(layers), MIN_SIZE)
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < smallest:
        raise ValueError(
            f"crop_size must be a whole number of at least {smallest} px for these layers, got {crop_size!r}."
        )
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint to resume from.")
    model = model if model is not None else VGG19(profiles.WEIGHTS, profiles.POOLING)
    device = model.input_shift.device
    contents = [_at_least(image, crop_size) for image in contents]

    config = {
        "mode": mode,
        "steps": steps,
        "batch": batch,
        "crop_size": crop_size,
        "lr": float(lr),
        "seed": seed,
        "content_layers": content_layers,
        "style_layers": style_layers,
        "style_blend": None if style_blend is None else [float(b) for b in style_blend],
        "content_weight": content_weight,
        "style_weight": style_weight,
        "tv_weight": tv_weight,
        "channels": channels,
        "residual_blocks": residual_blocks,
        "weights": model.weights,
        "pooling": model.pooling,
        "images": _fingerprint(styles, contents),
        "content_images": len(contents),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = Generator(channels, residual_blocks).to(device).train()
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    state = Training(network, config, step=0, history={}, seconds=0.0)
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if resume:
            state = _resumed(checkpoint, config, network, optimizer, rng)
        elif checkpoint.exists():
            raise CheckpointError(
                f"{checkpoint} already exists: resume it (resume=True, or --resume), "
                "or choose another path to start afresh."
            )

    with torch.no_grad():
        style_loss = (
            StyleLoss([model(s.to(device), style_layers) for s in styles], style_blend) if style_layers else None
        )
    weights = {"content": content_weight, "style": STYLE_SCALE * style_weight, "tv": tv_weight}
    weights = {name: w for name, w in weights.items() if w > 0}

    def losses(inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        features = model(outputs, layers)
        terms = {}
        if content_layers:
            with torch.no_grad():
                targets = model(inputs, content_layers)
            terms["content"] = ContentLoss(targets)(features)
        if style_loss is not None:
            terms["style"] = style_loss(features)
        if tv_weight > 0:
            terms["tv"] = total_variation(outputs)
        return terms

    bar = progress_bar(progress, steps, description)
    bar.update(state.step)
    started = time.perf_counter()
    seconds_before = state.seconds
    try:
        while state.step < steps:
            if mode == "style":
                inputs = random_crops(contents, batch, crop_size, rng)
            else:
                inputs = noise(batch, (crop_size, crop_size), rng)
            inputs = inputs.to(device)
            terms = losses(inputs, network(inputs))
            total = sum(weights[name] * value for name, value in terms.items())
            if not torch.isfinite(total):
                raise ValueError(
                    f"The training loss became {float(total)} at step {state.step + 1}: "
                    "start again with a lower learning rate."
                )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            state.step += 1
            for name, value in terms.items():
                state.history.setdefault(name, []).append(float(value.detach()))
            state.history.setdefault("total", []).append(float(total.detach()))
            state.seconds = seconds_before + time.perf_counter() - started
            bar.update(1)
            if state.step % 10 == 0:
                bar.set_postfix(loss=f"{state.history['total'][-1]:.3g}")
            if checkpoint is not None and (state.step % checkpoint_every == 0 or state.step == steps):
                save_checkpoint(checkpoint, state, optimizer, rng)
    finally:
        bar.close()
        network.eval()
    return state


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
    config = state["config"]
    network = Generator(config["channels"], config["residual_blocks"])
    network.load_state_dict(state["generator"])
    return Training(
        generator=network.to(device).eval(),
        config=config,
        step=state["step"],
        history=state["history"],
        seconds=state["seconds"],
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
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a generator checkpoint written by nst_lib ({CHECKPOINT_FORMAT}).")
    return state


def _resumed(path: Path, config: dict, network: Generator, optimizer, rng: torch.Generator) -> Training:
    """The training state saved at ``path``, loaded into ``network``, ``optimizer`` and ``rng``."""
    state = _read_checkpoint(path)
    saved = state["config"]
    different = [key for key in config if key != "steps" and saved.get(key) != config[key]]
    if different:
        key = different[0]
        what = "images" if key == "images" else f"{key} ({saved.get(key)!r}, now {config[key]!r})"
        raise CheckpointError(
            f"{path} was trained with other {what}: "
            "resume with the same settings, or start afresh with another checkpoint path."
        )
    network.load_state_dict(state["generator"])
    optimizer.load_state_dict(state["optimizer"])
    rng.set_state(state["rng"])
    return Training(network, config, step=state["step"], history=state["history"], seconds=state["seconds"])


# --------------------------------------------------------------------------------------
# Using a trained generator.


def stylize(generator: Generator, image: torch.Tensor) -> torch.Tensor:
    """``generator(image)`` for one image (1, 3, H, W) in [0, 1] -> (1, 3, H, W) in [0, 1] on the CPU."""
    device = next(generator.parameters()).device
    with torch.no_grad():
        return generator.eval()(image.to(device)).cpu()


def seeded_noise(shape: Sequence[int], seed: int = profiles.SEED) -> torch.Tensor:
    """The input of a texture generator for one picture of ``shape`` (H, W): (1, 3, H, W) in [0, 1]."""
    return noise(1, shape, torch.Generator().manual_seed(seed))


def synthesize(generator: Generator, shape: Sequence[int], seed: int = profiles.SEED) -> torch.Tensor:
    """A texture generator's picture of ``shape`` (H, W) from the noise of ``seed``: (1, 3, H, W) on the CPU."""
    return stylize(generator, seeded_noise(shape, seed))


def stylize_timed(generator: Generator, image: torch.Tensor, repeats: int = 3) -> tuple[torch.Tensor, float]:
    """``stylize(generator, image)`` and its time in seconds: the median of ``repeats`` runs
    after one untimed run (the first run at a new size pays for setting up memory)."""
    stylized = stylize(generator, image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        stylized = stylize(generator, image)
        times.append(time.perf_counter() - started)
    return stylized, sorted(times)[len(times) // 2]


def speed_table(rows: Sequence[tuple[str, Sequence[int], int, float]]) -> str:
    """A Markdown table of timings, one row per (method, image shape (..., H, W), iterations, seconds),
    with each time also as a multiple of the fastest."""
    fastest = min(seconds for *_, seconds in rows)
    lines = ["| method | image (px) | iterations | seconds | x fastest |", "| --- | --- | --- | --- | --- |"]
    for method, shape, iterations, seconds in rows:
        height, width = shape[-2:]
        lines.append(f"| {method} | {width} x {height} | {iterations} | {seconds:.3g} | {seconds / fastest:,.0f} |")
    return "\n".join(lines)


def evaluate(
    image: torch.Tensor,
    content: torch.Tensor | None,
    styles: torch.Tensor | Sequence[torch.Tensor],
    *,
    model: VGG19,
    config: dict,
) -> dict[str, float]:
    """The loss terms of ``image`` as ``transfer`` measures them, with the weights of ``config``
    (a generator's, or ``Result.params``): each term unweighted, plus the weighted ``total``."""
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    device = model.input_shift.device
    content_layers = config["content_layers"] if content is not None else []
    objective = perceptual_objective(
        model,
        content.to(device) if content is not None else None,
        [s.to(device) for s in styles],
        content_layers,
        config["style_layers"],
        config.get("style_blend"),
        None,
        config["tv_weight"] > 0,
    )
    weights = {
        "content": config["content_weight"],
        "style": STYLE_SCALE * config["style_weight"],
        "tv": config["tv_weight"],
    }
    with torch.no_grad():
        terms = {name: float(value) for name, value in objective(image.to(device)).items()}
    terms["total"] = sum(weights[name] * value for name, value in terms.items())
    return terms


def content_images_in(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: give a folder of content images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): add some or give another folder.")
    return files


# --------------------------------------------------------------------------------------
# Command line: `nst train-generator` and `nst stylize` (registered by cli.build_parser).


def add_parsers(commands) -> None:
    """Register the ``train-generator`` and ``stylize`` subcommands."""
    from .cli import _HelpFormatter, _layers, add_model_options
    from .images import MAX_SIZE

    full = profiles.PROFILES["full"]
    train = commands.add_parser(
        "train-generator",
        help="train a feed-forward generator for one style (Johnson et al. 2016) or its texture",
        description="Train a network that stylizes any image in one pass, on random crops of content images "
        "(by default the named content images), or with --texture one that turns noise into the style's texture. "
        "Checkpoints are written atomically; run the same command with --resume to continue an interrupted training.",
        formatter_class=_HelpFormatter,
    )
    train.add_argument("--style", action="append", required=True, help="style image (repeat for several)")
    train.add_argument("--blend", type=float, nargs="+", help="one weight per style image (default: equal)")
    train.add_argument("--content", action="append", default=[], help="content image: a file or a named image (repeat)")
    train.add_argument("--content-dir", type=Path, help="a folder whose images are all added to the content images")
    train.add_argument("--texture", action="store_true", help="train a texture generator: noise in, style loss only")
    train.add_argument("--checkpoint", required=True, type=Path, help="where to save the generator (a .pt file)")
    train.add_argument("--resume", action="store_true", help="continue the training saved in --checkpoint")
    train.add_argument("--steps", type=int, default=full.generator_steps, help="Adam steps")
    train.add_argument("--batch", type=int, default=full.generator_batch, help="crops per step")
    train.add_argument(
        "--crop-size", type=int, default=full.generator_size, help="side of the square training crops (px)"
    )
    train.add_argument(
        "--image-size",
        type=int,
        default=full.stylize_size,
        help="longest side of the content and style images the crops come from (px)",
    )
    train.add_argument("--lr", type=float, default=profiles.GENERATOR_LR, help="Adam's learning rate")
    train.add_argument("--seed", type=int, default=profiles.SEED, help="seed of the network, crops and noise")
    train.add_argument(
        "--content-layers", type=_layers, default=list(profiles.CONTENT_LAYERS), help="comma-separated layer names"
    )
    train.add_argument(
        "--style-layers", type=_layers, default=list(profiles.STYLE_LAYERS), help="comma-separated layer names"
    )
    train.add_argument("--content-weight", type=float, default=profiles.CONTENT_WEIGHT, help="content loss weight")
    train.add_argument("--style-weight", type=float, default=profiles.STYLE_WEIGHT, help="style loss weight")
    train.add_argument("--tv-weight", type=float, default=profiles.TV_WEIGHT, help="total variation weight")
    train.add_argument(
        "--channels", type=int, default=profiles.GENERATOR_CHANNELS, help="width of the network's first layer"
    )
    train.add_argument("--residual-blocks", type=int, default=profiles.RESIDUAL_BLOCKS, help="residual blocks")
    train.add_argument("--checkpoint-every", type=int, default=profiles.CHECKPOINT_EVERY, help="save every K steps")
    add_model_options(train)
    train.set_defaults(handler=_train_command)

    run = commands.add_parser(
        "stylize",
        help="apply a trained generator to an image (or draw a texture from noise)",
        description="Stylize an image in one forward pass of a generator saved by `nst train-generator`; "
        "a texture generator instead turns seeded noise into a square texture.",
        formatter_class=_HelpFormatter,
    )
    run.add_argument("--checkpoint", required=True, type=Path, help="a generator saved by train-generator")
    run.add_argument("--content", help="the image to stylize: a file or a named image (not for textures)")
    run.add_argument("--output", "-o", required=True, type=Path, help="where to write the picture (.png, .jpg, ...)")
    run.add_argument(
        "--size", type=int, default=full.stylize_size, help=f"longest side in pixels ({MIN_SIZE}-{MAX_SIZE})"
    )
    run.add_argument("--seed", type=int, default=profiles.SEED, help="seed of a texture's noise")
    run.add_argument(
        "--device",
        default="auto",
        help="'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N' (default: %(default)s)",
    )
    run.set_defaults(handler=_stylize_command)


def _check_output(path: Path, option: str) -> None:
    from .images import SAVE_FORMATS

    if path.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"{option} {path} needs an image suffix such as .png or .jpg.")
    if not path.parent.is_dir():
        raise ValueError(f"{option} {path}: the folder {path.parent} does not exist.")


def _train_command(args) -> None:
    from .assets import names
    from .images import check_size, load_image

    if args.texture and (args.content or args.content_dir):
        raise ValueError("A texture generator takes no content images: drop --texture or the content options.")
    if not args.checkpoint.parent.is_dir():
        raise ValueError(f"--checkpoint {args.checkpoint}: the folder {args.checkpoint.parent} does not exist.")
    check_size(args.image_size, "--image-size")
    sources = [] if args.texture else list(args.content)
    if args.content_dir is not None:
        sources += content_images_in(args.content_dir)
    if not args.texture and not sources:
        sources = names("content")
    device = pick_device(args.device)
    styles = [load_image(style, args.image_size) for style in args.style]
    contents = [load_image(source, args.image_size) for source in sources]
    model = VGG19(args.weights, args.pooling).to(device)
    try:
        training = train_generator(
            styles,
            contents,
            model=model,
            steps=args.steps,
            batch=args.batch,
            crop_size=args.crop_size,
            lr=args.lr,
            seed=args.seed,
            style_blend=args.blend,
            content_layers=args.content_layers,
            style_layers=args.style_layers,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            tv_weight=args.tv_weight,
            channels=args.channels,
            residual_blocks=args.residual_blocks,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            description=f"training ({'texture' if args.texture else 'style transfer'})",
        )
    except KeyboardInterrupt:
        if args.checkpoint.is_file():
            step = _read_checkpoint(args.checkpoint)["step"]
            print(
                f"interrupted: the last good checkpoint is {args.checkpoint} (it holds step {step}); "
                "add --resume to continue.",
                file=sys.stderr,
            )
        else:
            print("interrupted before the first checkpoint: nothing was written.", file=sys.stderr)
        raise SystemExit(130) from None
    total = training.history.get("total", [])
    change = f"; total loss {total[0]:.4g} -> {total[-1]:.4g}" if total else ""
    what = "texture" if args.texture else f"style transfer on {len(contents)} content image{'s' * (len(contents) != 1)}"
    print(
        f"wrote {args.checkpoint} ({what}; step {training.step} of {args.steps}, "
        f"{training.seconds:.1f} s in all, {training.seconds_per_step:.3f} s/step on {device}{change})"
    )


def _stylize_command(args) -> None:
    from .images import check_size, load_image, save_image

    _check_output(args.output, "--output")
    check_size(args.size, "--size")
    device = pick_device(args.device)
    training = load_checkpoint(args.checkpoint, device)
    if training.mode == "texture":
        if args.content is not None:
            raise ValueError(
                f"{args.checkpoint} is a texture generator: it takes no --content; give --size and --seed."
            )
        source = seeded_noise((args.size, args.size), args.seed)
    else:
        if args.content is None:
            raise ValueError(
                f"{args.checkpoint} is a style-transfer generator: give the image to stylize with --content."
            )
        source = load_image(args.content, args.size)
    started = time.perf_counter()
    image = stylize(training.generator, source)
    seconds = time.perf_counter() - started
    save_image(image, args.output)
    height, width = image.shape[-2:]
    print(f"wrote {args.output} ({width}x{height} px in {seconds:.2f} s on {device}; trained {training.step} steps)")
