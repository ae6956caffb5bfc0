"""Command line: ``python -m nst_lib`` or ``nst``.

Every user error ends in one sentence on stderr and exit status 2; nothing is
written unless the run succeeds (outputs are written atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import profiles
from .assets import AssetError
from .images import MAX_SIZE, MIN_SIZE, ImageError
from .vgg import LAYER_NAMES, WeightsError, pick_device

USER_ERRORS = (AssetError, ImageError, WeightsError, ValueError, FileNotFoundError)


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless it has none or its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, [], False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def _layers(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        default=profiles.WEIGHTS,
        help="VGG-19 weights: 'oxford' (offline, the original Caffe weights), 'torchvision' (downloads once), "
        "'random', or a state_dict path (default: %(default)s)",
    )
    parser.add_argument("--pooling", choices=("max", "avg"), default=profiles.POOLING, help="pooling layers (default: %(default)s)")
    parser.add_argument(
        "--device", default="auto", help="'auto' (cuda when available), 'cpu', 'cuda' or 'cuda:N' (default: %(default)s)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst", description="Neural style transfer after Gatys et al. (2016), with a VGG-19 that works offline."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "transfer",
        help="optimize one image: style transfer, content reconstruction or texture synthesis",
        description="Optimize an image to have the content of one image and the style of others. "
        "Images are files or named images (see `nst assets`). "
        "Without --content it synthesizes the style's texture; with --style-weight 0 it reconstructs the content.",
        formatter_class=_HelpFormatter,
    )
    run.add_argument("--content", help="content image: a file or a named image")
    run.add_argument("--style", action="append", default=[], help="style image (repeat for several)")
    run.add_argument("--blend", type=float, nargs="+", help="one weight per style image (default: equal)")
    run.add_argument("--output", "-o", required=True, type=Path, help="where to write the picture (.png, .jpg, ...)")
    run.add_argument("--size", type=int, default=profiles.SIZE, help=f"longest side in pixels ({MIN_SIZE}-{MAX_SIZE})")
    run.add_argument("--style-size", type=int, help="longest side of the style images (default: --size)")
    run.add_argument("--steps", type=int, default=profiles.STEPS, help="loss evaluations (forward+backward passes)")
    run.add_argument("--scales", type=int, default=1, help="coarse-to-fine levels, each half the size of the next")
    run.add_argument("--init", choices=("noise", "content"), default=profiles.INIT, help="starting image")
    run.add_argument("--optimizer", choices=("lbfgs", "adam"), default=profiles.OPTIMIZER, help="optimizer")
    run.add_argument("--lr", type=float, help="learning rate (default: 1 for L-BFGS, 0.02 for Adam)")
    run.add_argument("--content-layers", type=_layers, default=list(profiles.CONTENT_LAYERS), help="comma-separated layer names")
    run.add_argument("--style-layers", type=_layers, default=list(profiles.STYLE_LAYERS), help="comma-separated layer names")
    run.add_argument("--content-weight", type=float, default=profiles.CONTENT_WEIGHT, help="content loss weight")
    run.add_argument("--style-weight", type=float, default=profiles.STYLE_WEIGHT, help="style loss weight")
    run.add_argument("--tv-weight", type=float, default=profiles.TV_WEIGHT, help="total variation weight")
    run.add_argument("--seed", type=int, default=profiles.SEED, help="seed of the noise init")
    run.add_argument("--preserve-colors", action="store_true", help="keep the content's colours (luminance-only transfer)")
    run.add_argument("--save-every", type=int, default=0, metavar="K", help="also save the image every K evaluations (0: never)")
    add_model_options(run)
    run.set_defaults(handler=_transfer)

    listing = commands.add_parser("assets", help="list the named images and where each comes from")
    listing.set_defaults(handler=_assets)

    from . import report

    report.add_parser(commands)

    from .generator import add_parsers as add_generator_parsers

    add_generator_parsers(commands)

    parser.epilog = f"Layer names: {', '.join(n for n in LAYER_NAMES if n.startswith('conv'))} (and relu/pool)."
    return parser


def _transfer(args) -> None:
    from .images import load_image, save_image
    from .optimize import check_steps, check_weight, transfer
    from .vgg import VGG19

    if args.content is None and not args.style:
        raise ValueError("Give --content, --style or both.")
    if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
        raise ValueError(f"--output {args.output} needs an image suffix such as .png or .jpg.")
    if not args.output.parent.is_dir():
        raise ValueError(f"--output {args.output}: the folder {args.output.parent} does not exist.")
    check_steps(args.steps, "--steps")
    for name in ("content_weight", "style_weight", "tv_weight"):
        check_weight(getattr(args, name), name)
    if args.save_every < 0:
        raise ValueError("--save-every must be 0 (off) or a positive number of evaluations.")
    device = pick_device(args.device)
    content = load_image(args.content, args.size) if args.content else None
    styles = [load_image(style, args.style_size or args.size) for style in args.style]
    model = VGG19(args.weights, args.pooling).to(device)

    def save_intermediate(evaluation, image, losses):
        save_image(image, args.output.with_name(f"{args.output.stem}_{evaluation:04d}{args.output.suffix}"))

    result = transfer(
        content,
        styles,
        model=model,
        style_blend=args.blend,
        content_layers=args.content_layers,
        style_layers=args.style_layers,
        content_weight=args.content_weight if content is not None else 0.0,
        style_weight=args.style_weight if styles else 0.0,
        tv_weight=args.tv_weight,
        init=args.init,
        shape=(args.size, args.size) if content is None else None,
        seed=args.seed,
        scales=args.scales,
        preserve_colors=args.preserve_colors,
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        callback=save_intermediate if args.save_every else None,
        callback_every=args.save_every or 10,
    )
    save_image(result.image, args.output)
    first = {k: v[0] for k, v in result.history.items()}
    final = result.final_losses
    terms = ", ".join(f"{k} {first[k]:.4g} -> {final[k]:.4g}" for k in final)
    print(f"wrote {args.output} ({result.evaluations} evaluations in {result.seconds:.1f} s on {device}; {terms})")
    for event in result.events:
        print(f"note: {event}")


def _assets(args) -> None:
    from .assets import describe_sources, manifest

    for asset in manifest().values():
        print(f"{asset.name:24} {asset.role:8} {asset.title} - {asset.author} ({asset.license})")
    print(describe_sources())


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written.", file=sys.stderr)
        return 130
    return 0
