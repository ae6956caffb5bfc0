"""``nst transfer``: optimize one image; ``nst assets``: list the named images."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from .. import profiles
from ..images import MAX_SIZE, MIN_SIZE
from ..optimize import INITS, MAX_SCALES, OPTIMIZERS
from . import options


def register(commands) -> None:
    run = commands.add_parser(
        "transfer",
        help="optimize one image: style transfer, content reconstruction or texture synthesis",
        description="Optimize an image to have the content of one image and the style of others. "
        "Images are files or named images (see `nst assets`). "
        "Without --content it synthesizes the style's texture; with --style-weight 0 it reconstructs the content. "
        "List options take comma-separated values and may be repeated.",
        formatter_class=options.HelpFormatter,
    )
    run.add_argument("--content", help="content image: a file or a named image")
    options.add_list(run, "--style", help="style images: files or named images")
    options.add_output_option(run)
    run.add_argument("--size", type=int, default=profiles.SIZE, help=f"longest side in pixels ({MIN_SIZE}-{MAX_SIZE})")
    run.add_argument("--style-size", type=int, help="longest side of the style images (default: --size)")
    run.add_argument("--steps", type=int, default=profiles.STEPS, help="loss evaluations (forward+backward passes)")
    run.add_argument(
        "--scales", type=int, default=1, help=f"coarse-to-fine levels (1-{MAX_SCALES}), each half the next"
    )
    run.add_argument("--init", choices=INITS, default=profiles.INIT, help="starting image")
    run.add_argument("--init-image", metavar="PATH", help="start from this picture instead (a file or a named image)")
    run.add_argument("--optimizer", choices=OPTIMIZERS, default=profiles.OPTIMIZER, help="optimizer")
    run.add_argument("--lr", type=float, help="learning rate (default: 1 for L-BFGS, 0.02 for Adam)")
    options.add_loss_options(run)
    run.add_argument("--seed", type=int, default=profiles.SEED, help="seed of the noise init")
    run.add_argument("--preserve-colors", action="store_true", help="keep the content's colours (luminance-only)")
    run.add_argument(
        "--save-every", type=int, default=0, metavar="K", help="also save the image every K evaluations (0: never)"
    )
    run.add_argument(
        "--print-every", type=int, default=0, metavar="K", help="print the losses every K evaluations (0: never)"
    )
    options.add_model_options(run)
    run.set_defaults(handler=_transfer)

    listing = commands.add_parser("assets", help="list the named images and where each comes from")
    listing.set_defaults(handler=_assets)


def _transfer(args: argparse.Namespace) -> None:
    from .. import optimize
    from ..images import load_image, save_image

    styles = args.style or []
    if args.content is None and not styles:
        raise ValueError("Give --content, --style or both.")
    options.check_output(args.output)
    optimize.check_steps(args.steps, "--steps")
    for name in ("save_every", "print_every"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 (off) or a positive number of evaluations.")
    loss = options.loss_spec(args, content=args.content is not None, style=bool(styles))
    content = load_image(args.content, args.size) if args.content else None
    style_images = [load_image(style, args.style_size or args.size) for style in styles]
    init = load_image(args.init_image, args.size) if args.init_image else args.init
    model = options.model(args)
    result = optimize.transfer(
        content,
        style_images,
        model=model,
        loss=loss,
        init=init,
        shape=(args.size, args.size) if content is None else None,
        seed=args.seed,
        scales=args.scales,
        preserve_colors=args.preserve_colors,
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        callback=_on_evaluation(args) if args.save_every or args.print_every else None,
        callback_every=1,
    )
    save_image(result.image, args.output)
    first = {k: v[0] for k, v in result.history.items()}
    final = result.final_losses
    terms = ", ".join(f"{k} {first[k]:.4g} -> {final[k]:.4g}" for k in final)
    print(
        f"wrote {args.output} ({result.evaluations} evaluations in {result.seconds:.1f} s on {model.device}; {terms})"
    )
    for event in result.events:
        print(f"note: {event}")


def _on_evaluation(args: argparse.Namespace):
    """Save the picture every --save-every evaluations and print the losses every --print-every."""
    from ..images import save_image

    output = args.output

    def callback(evaluation, image, losses):
        if args.save_every and evaluation % args.save_every == 0:
            save_image(image, output.with_name(f"{output.stem}_{evaluation:04d}{output.suffix}"))
        if args.print_every and evaluation % args.print_every == 0:
            terms = " ".join(f"{name} {value:.4g}" for name, value in losses.items())
            tqdm.write(f"evaluation {evaluation}/{args.steps}: {terms}")

    return callback


def _assets(args: argparse.Namespace) -> None:
    from ..assets import describe_sources, manifest

    for asset in manifest().values():
        print(f"{asset.name:24} {asset.role:8} {asset.title} - {asset.author} ({asset.license})")
    print(describe_sources())
