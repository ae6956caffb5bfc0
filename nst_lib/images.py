"""Images in and out: files and PIL images <-> tensors (1, 3, H, W), RGB in [0, 1].

Conversions (documented, never silent surprises):
- EXIF orientation is applied, so a phone photo comes out the way it is shown.
- Grayscale images become three equal channels; 16-bit and floating-point
  images are rescaled to [0, 1] from their own range; CMYK and YCbCr become RGB
  through PIL; palette images are expanded.
- Transparency (RGBA, LA, palette with transparency) is composited onto white.
Saving is atomic: the picture appears complete or not at all.

Tensors given to the library (``check_image``, which ``transfer``,
``train_generator``, ``stylize`` and ``LossSpec.evaluate`` apply to every
image they take): (1, 3, H, W) or (3, H, W) RGB; uint8 tensors are divided by
255; floating-point ones must already lie in [0, 1] (rounding errors up to
``RANGE_TOLERANCE`` are clamped). Any other dtype, a value outside [0, 1], NaN
or infinity, another channel count or rank, a side below 1 or above
``MAX_SIZE`` px is a ValueError that names the argument (something not a tensor, a TypeError).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .assets import resolve
from .files import atomic_write

# Longest side, in pixels, that the package agrees to work at.
MIN_SIZE = 16
MAX_SIZE = 4096
# Files with more pixels than this are refused (PIL's decompression-bomb limit, about 89 megapixels).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
# How far outside [0, 1] a float tensor's values may stray by rounding before it is refused.
RANGE_TOLERANCE = 1e-3
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


class ImageError(ValueError):
    """An image file or size a user gave cannot be used; the message says why and what to do."""


def check_size(size: int, name: str = "size") -> int:
    """Validate a longest-side size in pixels."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ImageError(f"{name} must be a whole number of pixels, got {size!r}.")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ImageError(f"{name}={size} is out of range: use {MIN_SIZE} to {MAX_SIZE} pixels (longest side).")
    return int(size)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Read an image file as an upright 8-bit RGB PIL image."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"Image file not found: {path}.")
    if not path.is_file():
        raise ImageError(f"{path} is not a file: give the path of an image file.")
    return _decode(path, path)


def decode_image(data: bytes, name: str) -> Image.Image:
    """Read the bytes of an image file (an upload, say) as an upright 8-bit RGB PIL image.

    ``name`` is what the file is called in error messages.
    """
    return _decode(io.BytesIO(data), name)


def _decode(source, name) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_PIXELS and twice that; here both are refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                return to_rgb(image)
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image PIL can read (PNG, JPEG, TIFF, WebP, BMP, ...).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name} has more than {MAX_PIXELS / 1e6:.0f} megapixels, more than this package opens: shrink it first."
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name} is damaged or truncated and cannot be read ({error}).") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to upright 8-bit RGB (see the module docstring)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = _value_range(image.mode, values)
        scaled = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
        image = Image.fromarray((scaled * 255.0 + 0.5).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def _value_range(mode: str, values: np.ndarray) -> tuple[float, float]:
    if mode.startswith("I;16") or (mode == "I" and values.min() >= 0 and values.max() <= 65535 and values.max() > 255):
        return 0.0, 65535.0
    if mode == "I" and values.min() >= 0 and values.max() <= 255:
        return 0.0, 255.0
    if mode == "F" and values.min() >= 0 and values.max() <= 1:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def resize(image: Image.Image, size: int | None) -> Image.Image:
    """Scale so that the longest side is ``size`` px (aspect kept); None keeps it."""
    if size is None:
        return image
    size = check_size(size)
    width, height = image.size
    scale = size / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(new) < MIN_SIZE:
        raise ImageError(
            f"At {size} px the image would be {new[0]}x{new[1]}: its shorter side must reach {MIN_SIZE} px; "
            "use a larger size or a less elongated image."
        )
    if scale > 8:
        warnings.warn(f"Upscaling a {width}x{height} image {scale:.0f}x to {new[0]}x{new[1]}: expect a blurry target.", stacklevel=3)
    return image.resize(new, Image.Resampling.LANCZOS) if new != image.size else image


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    array = np.asarray(to_rgb(image), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def check_image(image, name: str = "image", batch: bool = False) -> torch.Tensor:
    """``image`` as a float32 tensor (B, 3, H, W) in [0, 1] on its own device, by the rule in the module
    docstring, or a ValueError that names it (``name``). Without ``batch``, B must be 1."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor (1, 3, H, W) in [0, 1], got {type(image).__name__}.")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    shape = tuple(image.shape)
    if image.dim() != 4 or shape[1] != 3:
        raise ValueError(f"{name} must be an RGB tensor (1, 3, H, W) or (3, H, W), got shape {shape}.")
    if not batch and shape[0] != 1:
        raise ValueError(f"{name} must be one image (1, 3, H, W), got a batch of {shape[0]}.")
    if min(shape) < 1 or max(shape[2:]) > MAX_SIZE:
        raise ValueError(f"{name} is {shape[3]}x{shape[2]} px: its sides must be 1 to {MAX_SIZE} px.")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise ValueError(f"{name} has dtype {image.dtype}: give uint8 (0-255) or floating-point (0-1) pixels.")
    image = image.detach().float()
    low, high = float(image.min()), float(image.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} holds NaN or infinite values: give pixels in [0, 1].")
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        hint = " (divide 0-255 pixels by 255)" if high > 1.5 and low >= 0 else ""
        raise ValueError(f"{name} has values from {low:.4g} to {high:.4g}: give pixels in [0, 1]{hint}.")
    return image.clamp(0, 1)


def pixel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two images in [0, 1] (0: identical, 1: opposite)."""
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare images of shapes {tuple(a.shape)} and {tuple(b.shape)}.")
    return float((a.detach().cpu() - b.detach().cpu()).abs().mean())


def low_pass(image: torch.Tensor, scale: float) -> torch.Tensor:
    """``image`` (1, 3, H, W) blurred by a Gaussian of standard deviation ``scale`` px, edges mirrored (then
    repeated, on a picture smaller than the blur): what is left when detail finer than ``scale`` px is
    averaged away."""
    picture = image.detach().cpu().float()
    if scale <= 0:
        return picture
    radius = max(1, math.ceil(3 * scale))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / scale) ** 2)
    kernel = kernel / kernel.sum()
    channels = picture.shape[1]
    for horizontal in (True, False):  # separable: along the rows, then along the columns
        side = picture.shape[-1 if horizontal else -2]
        mirrored = min(radius, side - 1)
        for amount, mode in ((mirrored, "reflect"), (radius - mirrored, "replicate")):
            if amount:
                pad = [amount, amount, 0, 0] if horizontal else [0, 0, amount, amount]
                picture = torch.nn.functional.pad(picture, pad, mode=mode)
        weights = kernel.view(1, 1, 1, -1) if horizontal else kernel.view(1, 1, -1, 1)
        picture = torch.nn.functional.conv2d(picture, weights.expand(channels, 1, *weights.shape[2:]), groups=channels)
    return picture


def structure_distance(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """``pixel_distance`` after a ``low_pass`` at ``scale`` px: how far apart two images are in what
    they show (edges, surfaces, colours), leaving out speckle finer than ``scale``."""
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare images of shapes {tuple(a.shape)} and {tuple(b.shape)}.")
    return pixel_distance(low_pass(a, scale), low_pass(b, scale))


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """Tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> 8-bit RGB PIL image (values clamped)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"Expected one image, got a batch of {image.shape[0]}.")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"Expected an RGB tensor (3, H, W), got shape {tuple(image.shape)}.")
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def image_files_in(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder`` (by suffix), sorted by name."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ImageError(f"{folder} is not a folder: give a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SAVE_FORMATS)
    if not files:
        raise ImageError(f"{folder} holds no images ({', '.join(SAVE_FORMATS)}): add some or give another folder.")
    return files


def load_image(name_or_path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """A named image (see ``assets``) or an image file -> tensor (1, 3, H, W) in [0, 1].

    ``size`` is the longest side in pixels; None keeps the file's own size.
    """
    return pil_to_tensor(resize(open_image(resolve(name_or_path)), size))


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Write an image atomically (temporary file, then rename); the format follows the suffix."""
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"Cannot save {path}: use one of the suffixes {', '.join(SAVE_FORMATS)}.")
    picture = tensor_to_pil(image) if isinstance(image, torch.Tensor) else image.convert("RGB")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if not path.parent.is_dir():
        raise ImageError(f"Cannot save {path}: the folder {path.parent} does not exist.")
    with atomic_write(path) as handle:
        picture.save(handle, format=fmt, **options)
    return path


# Colour spaces for luminance-only transfer (Gatys et al. 2016, "Preserving colour").
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]]
)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YIQ (Y, the luminance, in [0, 1])."""
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_yiq`` (not clamped)."""
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def luminance_only(image: torch.Tensor) -> torch.Tensor:
    """The image's luminance copied into all three channels."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).clone()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Gray ``style`` whose luminance has the mean and spread of ``content``'s."""
    source = rgb_to_yiq(style)[:, :1]
    target = rgb_to_yiq(content)[:, :1]
    matched = (source - source.mean()) / source.std().clamp_min(1e-6) * target.std() + target.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).clone()
