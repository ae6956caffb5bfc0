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
Training and checkpoints are in ``training``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import profiles
from .images import MIN_SIZE, check_image
from .vgg import fast_bfloat16

# The network downsamples twice by 2: sides are padded to a multiple of this.
STRIDE = 4
# How the network doubles its resolution before each upsampling convolution.
UPSAMPLINGS = ("nearest", "bilinear")


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
