"""``nst transfer``: optimize one image; ``nst assets``: list the named images."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from .. import profiles
from ..images import MAX_SIZE, MIN_SIZE
from ..optimize import INITS, MAX_LEARNING_RATE, MAX_SCALES, OPTIMIZERS
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
    run.add_argument(
        "--style-size", type=int, help=f"longest side of the style images ({MIN_SIZE}-{MAX_SIZE}; default: --size)"
    )
    run.add_argument("--steps", type=int, default=profiles.STEPS, help="loss evaluations (forward+backward passes)")
    run.add_argument(
        "--scales", type=int, default=1, help=f"coarse-to-fine levels (1-{MAX_SCALES}), each half the next"
    )
    run.add_argument("--init", choices=INITS, default=profiles.INIT, help="starting image")
    run.add_argument("--init-image", metavar="PATH", help="start from this picture instead (a file or a named image)")
    run.add_argument("--optimizer", choices=OPTIMIZERS, default=profiles.OPTIMIZER, help="optimizer")
    run.add_argument(
        "--lr",
        type=float,
        help=f"learning rate, up to {MAX_LEARNING_RATE:g}; above 1, L-BFGS wants --line-search "
        "(docs/quality.md, Stability) (default: 1 for L-BFGS, 0.02 for Adam)",
    )
    run.add_argument(
        "--line-search",
        action=argparse.BooleanOptionalAction,
        help="L-BFGS only: a strong-Wolfe line search, which shortens the steps that would blow the loss up; wanted "
        f"above --lr 1, a little less stylized at 1 (default: {'on' if profiles.LINE_SEARCH else 'off'})",
    )
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
    from ..images import check_size, load_image, save_image

    styles = args.style or []
    if args.content is None and not styles:
        raise ValueError("Give --content, --style or both.")
    check_size(args.size, "--size")  # also the texture's size, when there is no content
    style_size = args.size if args.style_size is None else check_size(args.style_size, "--style-size")
    optimize.check_steps(args.steps, "--steps")
    if args.lr is not None:
        optimize.check_learning_rate(args.lr, "--lr")
    if args.line_search and args.optimizer != "lbfgs":
        raise ValueError(f"--line-search is for L-BFGS only, not {args.optimizer}: drop it or use --optimizer lbfgs.")
    line_search = profiles.LINE_SEARCH if args.line_search is None else args.line_search
    inputs = [args.content, *styles, args.init_image]
    options.check_output(args.output, inputs=inputs)
    for name in ("save_every", "print_every"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 (off) or a positive number of evaluations.")
    if args.save_every:
        _check_intermediates(args.output, inputs)
    loss = options.loss_spec(args, content=args.content is not None, style=bool(styles))
    saved: list = []
    args.on_interrupt = lambda: _interrupted(args, saved)
    content = load_image(args.content, args.size) if args.content else None
    style_images = [load_image(style, style_size) for style in styles]
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
        line_search=line_search,
        callback=_on_evaluation(args, saved) if args.save_every or args.print_every else None,
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


def _intermediate(output, evaluation: int):
    return output.with_name(f"{output.stem}_{evaluation:04d}{output.suffix}")


def _check_intermediates(output, inputs) -> None:
    """Refuse an input that --save-every would overwrite (a name such as out_0020.png beside the output)."""
    from ..assets import resolve

    for source in inputs:
        if source is not None:
            path = resolve(source).resolve()
            number = path.stem[len(output.stem) + 1 :]
            named_so = path.stem.startswith(f"{output.stem}_") and number.isdigit() and len(number) >= 4
            if named_so and path.parent == output.resolve().parent and path.suffix == output.suffix:
                raise ValueError(f"--save-every would write over the input {source}: choose another --output.")


def _interrupted(args: argparse.Namespace, saved: list) -> str:
    if not saved:
        return f"nothing was written ({args.output} was not)."
    count = f"{len(saved)} intermediate picture{'s' * (len(saved) != 1)}"
    return f"wrote {count} (the last: {saved[-1]}); {args.output} was not written."


def _on_evaluation(args: argparse.Namespace, saved: list):
    """Save the picture every --save-every evaluations (adding each path to ``saved``) and print the losses
    every --print-every."""
    from ..images import save_image

    output = args.output

    def callback(evaluation, image, losses):
        if args.save_every and evaluation % args.save_every == 0:
            saved.append(save_image(image, _intermediate(output, evaluation)))
        if args.print_every and evaluation % args.print_every == 0:
            terms = " ".join(f"{name} {value:.4g}" for name, value in losses.items())
            tqdm.write(f"evaluation {evaluation}/{args.steps}: {terms}")

    return callback


def _assets(args: argparse.Namespace) -> None:
    from ..assets import describe_sources, manifest

    for asset in manifest().values():
        print(f"{asset.name:24} {asset.role:8} {asset.title} - {asset.author} ({asset.license})")
    print(describe_sources())
