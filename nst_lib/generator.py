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
``Recipe`` says how large a network is and how it is trained; the training
loop is in ``training``, the files it writes in ``checkpoints``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import profiles
from .images import MAX_SIZE, MIN_SIZE, check_image
from .losses import LossSpec
from .optimize import check_learning_rate, check_steps
from .sizing import EVALUATION_FACTOR, activation_values, check_memory
from .vgg import fast_bfloat16, min_image_side

# The network downsamples twice by 2: sides are padded to a multiple of this.
STRIDE = 4
# How the network doubles its resolution before each upsampling convolution.
UPSAMPLINGS = ("nearest", "bilinear")
# Bounds on the network's size, as images.MAX_SIZE bounds an image's (Johnson et al.: 32 channels, 5 blocks).
MAX_CHANNELS = 128
MAX_RESIDUAL_BLOCKS = 32
# Per pixel of the input, per channel of the first layer: the values a forward pass holds at once at its peak
# (about 7.8 measured by bench/generator_memory.py, in float32 at 512 to 2048 px).
STYLIZE_VALUES_PER_CHANNEL = 8
# Crops per step, bounded as the network's size is (Johnson et al.: 4).
MAX_BATCH = 256
# A training step's memory beyond the process that holds torch, the VGG-19 and the images: autograd's and
# oneDNN's own buffers (the VGG-19's peak over the feature maps it keeps is sizing.EVALUATION_FACTOR);
# bench/generator_memory.py measures the estimate against the peak.
TRAINING_OVERHEAD_BYTES = 2**30 * 2 // 5


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    # Reflection padding: zero padding would darken every border.
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride))


def _conv_norm_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, upsample: str | None = None):
    layers = []
    if upsample:
        layers.append(nn.Upsample(scale_factor=2, mode=upsample, **({} if upsample == "nearest" else {"align_corners": False})))
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
    resolution (Johnson et al.: 5). ``upsample``: how each of the two
    upsamplings resizes before its convolution, "nearest" or "bilinear".
    """

    def __init__(self, channels: int = profiles.GENERATOR_CHANNELS, residual_blocks: int = profiles.RESIDUAL_BLOCKS,
                 upsample: str = profiles.GENERATOR_UPSAMPLE):
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ValueError(f"Unknown upsampling {upsample!r}: choose {' or '.join(UPSAMPLINGS)}.")
        c = channels
        self.channels, self.residual_blocks, self.upsample = channels, residual_blocks, upsample
        self.layers = nn.Sequential(
            _conv_norm_relu(3, c, 9),
            _conv_norm_relu(c, 2 * c, 3, stride=2),
            _conv_norm_relu(2 * c, 4 * c, 3, stride=2),
            *[ResidualBlock(4 * c) for _ in range(residual_blocks)],
            _conv_norm_relu(4 * c, 2 * c, 3, upsample=upsample),
            _conv_norm_relu(2 * c, c, 3, upsample=upsample),
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


def parameter_count(channels: int, residual_blocks: int) -> int:
    """The network's number of weights, counted without making it."""
    with torch.device("meta"):
        return sum(p.numel() for p in Generator(channels, residual_blocks).parameters())


def training_values(channels: int, residual_blocks: int) -> int:
    """Per pixel of a training crop: the values in the feature maps that the generator's forward pass keeps
    for its backward pass (each padding, convolution, normalization and ReLU output, in units of one channel
    at the crop's own size: a stride-2 layer's map of 2c channels counts c/2)."""
    c = channels
    down = 3 + 3 * c + (c + 3 * 2 * c / 4) + (2 * c / 4 + 3 * 4 * c / 16)  # the 9x9 input layer, two stride-2 layers
    blocks = residual_blocks * 8 * (4 * c / 16)  # two paddings, convolutions, normalizations, a ReLU and the sum
    up = (c + c + 3 * 2 * c / 4) + (2 * c + 2 * c + 3 * c) + (c + 3) + 3  # two upsamplings, the output layer
    return math.ceil(down + blocks + up)


def stylize_bytes(channels: int, residual_blocks: int, shape: Sequence[int]) -> int:
    """Memory a forward pass over one image of ``shape`` (H, W) takes beyond the running process: the weights
    and the feature maps held at its peak, in float32."""
    height, width = shape
    return 4 * (parameter_count(channels, residual_blocks) + height * width * (
        STYLIZE_VALUES_PER_CHANNEL * channels + 16))


def noise(count: int, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
    """The input of a texture generator: uniform noise (count, 3, H, W) in [0, 1]."""
    return torch.rand((count, 3, *shape), generator=generator)


def run_generator(generator: Generator, images: torch.Tensor, bfloat16: bool) -> torch.Tensor:
    """``generator(images)`` as float32, its convolutions in bfloat16 under autocast when ``bfloat16``
    (the weights stay float32: that is how training keeps Adam's small updates)."""
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bfloat16):
        return generator(images).float()


def stylize(generator: Generator, image: torch.Tensor, bfloat16: bool | None = None) -> torch.Tensor:
    """``generator(image)`` for one image (1, 3, H, W) in [0, 1] -> (1, 3, H, W) in [0, 1] on the CPU.

    ``bfloat16``: run the convolutions in bfloat16, as training does where the
    device runs it natively; None (default): wherever that is the case.

    ``image`` follows ``images.check_image``'s rule.
    """
    image = check_image(image, "image")
    device = next(generator.parameters()).device
    if bfloat16 is None:
        bfloat16 = fast_bfloat16(device)
    with torch.no_grad():
        return run_generator(generator.eval(), image.to(device), bfloat16).clamp(0, 1).cpu()


def seeded_noise(shape: Sequence[int], seed: int = profiles.SEED) -> torch.Tensor:
    """The input of a texture generator for one picture of ``shape`` (H, W): (1, 3, H, W) in [0, 1]."""
    return noise(1, shape, torch.Generator().manual_seed(seed))


def synthesize(
    generator: Generator, shape: Sequence[int], seed: int = profiles.SEED, bfloat16: bool | None = None
) -> torch.Tensor:
    """A texture generator's picture of ``shape`` (H, W) from the noise of ``seed``: (1, 3, H, W) on the CPU."""
    return stylize(generator, seeded_noise(shape, seed), bfloat16)


def stylize_timed(
    generator: Generator, image: torch.Tensor, repeats: int = 3, bfloat16: bool | None = None
) -> tuple[torch.Tensor, float]:
    """``stylize(generator, image)`` and its time in seconds: the median of ``repeats`` runs
    after one untimed run (the first run at a new size pays for setting up memory)."""
    stylized = stylize(generator, image, bfloat16)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        stylized = stylize(generator, image, bfloat16)
        times.append(time.perf_counter() - started)
    return stylized, sorted(times)[len(times) // 2]


def evaluations_to_reach(totals: Sequence[float], level: float) -> int | None:
    """Johnson et al.'s comparison: how many evaluations a per-image optimization, whose total loss
    per evaluation is ``totals``, needed before its best total so far was at or below ``level`` (a
    generator's total on the same picture, under the same loss); None if it never got there."""
    best = math.inf
    for count, total in enumerate(totals, start=1):
        best = min(best, total)
        if best <= level:
            return count
    return None


# --------------------------------------------------------------------------------------
# The recipe: the network's size, and how it is trained (the loop is in ``training``).

_FULL = profiles.PROFILES["full"]
SCHEDULES = ("cosine", "constant")
FINAL_LR_FRACTION = 0.01


@dataclass(frozen=True)
class Recipe:
    """How a generator is trained (the loss apart): the network's size, Adam and the crops.

    ``steps`` counts Adam steps, each over ``batch`` square crops of
    ``crop_size`` px; ``seed`` fixes the network's first weights, the crops and
    the noise. ``warmup``: the first steps train on the content loss alone (the
    network learns to give the photograph back) before the style is added.
    ``upsample``: see ``Generator``. Defaults are the ``full`` profile's, after
    Johnson et al.
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
        check_steps(self.steps, "steps")
        check_batch(self.batch)
        check_channels(self.channels)
        blocks = self.residual_blocks
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
            raise ValueError(f"residual_blocks must be a whole number of at least 0, got {blocks!r}.")
        for name, least, most in (("batch", 1, MAX_BATCH), ("channels", 1, MAX_CHANNELS),
                                  ("residual_blocks", 0, MAX_RESIDUAL_BLOCKS)):
            if getattr(self, name) > most:
                raise ValueError(f"{name}={getattr(self, name)} is out of range: use {least} to {most}.")
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

    def memory(self, loss: LossSpec) -> int:
        """Bytes a training step takes beyond the process that holds torch, the VGG-19 and the images: the
        network with its gradients and Adam's two moments, and the feature maps that the generator and the
        VGG-19 keep for the backward pass over ``batch`` crops (float32 throughout: bfloat16 takes less)."""
        crop = (self.crop_size, self.crop_size)
        per_crop = (training_values(self.channels, self.residual_blocks) * crop[0] * crop[1]
                    + EVALUATION_FACTOR * activation_values(crop, loss.layers))
        return int(TRAINING_OVERHEAD_BYTES + 4 * (4 * parameter_count(self.channels, self.residual_blocks)
                                                  + self.batch * per_crop))

    def check_memory(self, loss: LossSpec, device: torch.device) -> None:
        """Raise a ValueError, before the network is made, when a training step would need more memory than
        ``device`` has free (``memory``)."""
        check_memory(
            self.memory(loss), device,
            f"Training {self.batch} crops of {self.crop_size} px at a time through a generator of {self.channels} "
            f"channels and {self.residual_blocks} residual blocks",
            "lower the batch, the crop size, the channels or the residual blocks",
        )

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


def check_batch(batch, name: str = "batch") -> int:
    """Crops per training step: a whole number of at least 1, or a ValueError that names it."""
    return _whole(batch, name)


def check_channels(channels, name: str = "channels") -> int:
    """The width of the network's first layer: a whole number of at least 1, or a ValueError that names it."""
    return _whole(channels, name)


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return value
