"""Options that several commands share, each declared once, and how they become library objects."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import profiles
from ..assets import resolve
from ..files import check_writable, same_file
from ..images import SAVE_FORMATS
from ..losses import LossSpec, check_weight
from ..vgg import POOLINGS, PRECISIONS


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (lists as the comma-separated text one would type)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def names(text: str) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']."""
    return [name.strip() for name in text.split(",") if name.strip()]


def numbers(text: str) -> list[float]:
    """'2,1.5' -> [2.0, 1.5]."""
    try:
        return [float(value) for value in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


class ListOption(argparse.Action):
    """A list option: comma-separated values, and the option may be repeated to add more.
    The first use replaces the default."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        earlier = [] if current is None or isinstance(current, str) else list(current)
        setattr(namespace, self.dest, earlier + list(values))


def add_list(parser, *flags, default=None, kind=names, **options) -> None:
    """Declare a list option; a list default is shown and parsed as the text one would type. A use of the
    option that names nothing (``--content ,``) is refused rather than read as the option left out."""
    if isinstance(default, (list, tuple)):
        default = ",".join(f"{value:g}" if isinstance(value, float) else str(value) for value in default)
    parser.add_argument(*flags, action=ListOption, type=_at_least_one(kind), default=default, **options)


def _at_least_one(kind):
    def parse(text: str) -> list:
        values = kind(text)
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} names nothing: give one or more values, comma-separated, "
                                             "or leave the option out")
        return values

    parse.__name__ = kind.__name__  # what argparse calls the expected type in its own messages
    return parse


def add_loss_options(parser: argparse.ArgumentParser) -> None:
    """Layers, weights and blend: what becomes a ``LossSpec``."""
    add_list(parser, "--content-layers", default=profiles.CONTENT_LAYERS, help="content layers, comma-separated")
    add_list(parser, "--style-layers", default=profiles.STYLE_LAYERS, help="style layers, comma-separated")
    add_list(
        parser,
        "--style-layer-weights",
        kind=numbers,
        metavar="W,...",
        help="one weight per style layer (default: equal)",
    )
    parser.add_argument("--content-weight", type=float, default=profiles.CONTENT_WEIGHT, help="content loss weight")
    parser.add_argument("--style-weight", type=float, default=profiles.STYLE_WEIGHT, help="style loss weight")
    parser.add_argument("--tv-weight", type=float, default=profiles.TV_WEIGHT, help="total variation weight")
    add_list(parser, "--blend", kind=numbers, metavar="W,...", help="one weight per style image (default: equal)")


def loss_spec(args, content: bool = True, style: bool = True) -> LossSpec:
    """The ``LossSpec`` the loss options describe; a term with no image to measure against is off."""
    for name in ("content_weight", "style_weight", "tv_weight"):
        check_weight(getattr(args, name), name)  # also those switched off: a typo is still a typo
    return LossSpec(
        content_layers=tuple(args.content_layers),
        style_layers=tuple(args.style_layers),
        content_weight=args.content_weight if content else 0.0,
        style_weight=args.style_weight if style else 0.0,
        tv_weight=args.tv_weight,
        style_blend=None if args.blend is None else tuple(args.blend),
        style_layer_weights=None if args.style_layer_weights is None else tuple(args.style_layer_weights),
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=profiles.DEVICE, help="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:N' or 'mps'"
    )


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        default=profiles.WEIGHTS,
        help="VGG-19 weights: 'oxford' (offline, the original Caffe weights), 'torchvision' (downloads once), "
        "'random', or a state_dict path",
    )


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=profiles.PRECISION,
        help="'auto': bfloat16 where it was measured faster than float32 on this machine (AVX512-BF16/AMX CPUs, "
        "recent GPUs), else float32",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The VGG-19 and where it runs."""
    add_weights_option(parser)
    parser.add_argument("--pooling", choices=POOLINGS, default=profiles.POOLING, help="pooling layers")
    add_precision_option(parser)
    parser.add_argument(
        "--pre-relu",
        action="store_true",
        help="read conv layers before their ReLU (PyTorch's convention) instead of after it (the default, as in "
        "Gatys et al.'s Caffe network)",
    )
    add_device_option(parser)


def model(args):
    """The VGG19 the model options describe, on its device."""
    from ..vgg import VGG19, pick_device

    device = pick_device(args.device)
    return VGG19(args.weights, args.pooling, precision=args.precision, pre_relu=args.pre_relu).to(device)


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """Where batches of independent optimizations run (see nst_lib.cluster)."""
    from ..cluster import EXECUTOR_VARIABLE, EXECUTORS, SCHEDULER_VARIABLE, THREADS_VARIABLE
    from ..sizing import IN_PROCESS_CORES

    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        help="'inprocess': one optimization after another here; 'local': a Dask cluster on this machine, "
        f"workers x threads measured; 'auto': a local cluster above {IN_PROCESS_CORES} cores or with several GPUs "
        f"(default: ${EXECUTOR_VARIABLE} when set, else auto)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=f"a running Dask scheduler, e.g. tcp://host:8786 (default: ${SCHEDULER_VARIABLE} when set)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads per optimization; pictures depend on it (default: "
        f"${THREADS_VARIABLE} when set, else all cores in-process and as measured on a local cluster)",
    )


def check_threads(args) -> int | None:
    """``--threads``, checked."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a whole number of at least 1, got {args.threads}.")
    return args.threads


def add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", required=True, type=Path, help="where to write the picture (.png, .jpg, ...)")


def check_output(path: Path, option: str = "--output", inputs=()) -> None:
    """Refuse, before any work, an output that could not be written (see ``files.check_writable``), or
    that is one of the ``inputs`` (paths, or text that names a file or a named image; None is skipped)."""
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"{option} {path} needs an image suffix such as .png or .jpg.")
    check_writable(path, option)
    for source in inputs:
        if source is not None and same_file(path, resolve(source) if isinstance(source, str) else Path(source)):
            raise ValueError(f"{option} {path} is also an input ({source}): write the result to another file.")

