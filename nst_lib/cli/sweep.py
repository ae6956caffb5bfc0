"""``nst sweep``: a grid of optimizations, a contact sheet, and a table of every cell."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import profiles
from ..files import check_folder
from ..optimize import INITS
from . import options

EPILOG = """Each list option is an axis of the grid: every combination of the values runs once. Example:

  nst sweep --content tubingen --style starry_night --style-weight 1,100,1e3,1e4,1e6 \\
            --init noise,content --seed 0,1 --size 128 --steps 100 -o sweeps/starry

writes sweeps/starry/contact_sheet.png (style weights across, init x seed down), sweep.csv and sweep.json
(settings, losses, evaluations and seconds of every cell) and cells/<key>.png. Run the same command again
after an interruption, or with more values, and the finished cells are reused."""


def integers(text: str) -> list[int]:
    """'0,1' -> [0, 1]."""
    try:
        return [int(value) for value in options.names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


class LayerSets(argparse.Action):
    """Each use of the option is one value of the axis: a comma-separated set of layers.
    The first use replaces the default."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest)
        earlier = [] if current is self.default else list(current)
        setattr(namespace, self.dest, earlier + [tuple(options.names(values))])


def register(commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="run a grid of settings and write a contact sheet with a table of every cell",
        description="Run every combination of the given values (content, style, weights, layers, init, seed, size, "
        "steps) as one batch, in this process or on a Dask cluster, and write a labelled contact sheet, "
        "a CSV and a JSON of every cell, and each picture.",
        epilog=EPILOG,
        formatter_class=options.HelpFormatter,
    )
    options.add_list(parser, "--content", help="content images (files or named images)")
    options.add_list(parser, "--style", help="style images, one per cell")
    for name, default in (("content-weight", profiles.CONTENT_WEIGHT), ("style-weight", profiles.STYLE_WEIGHT),
                          ("tv-weight", profiles.TV_WEIGHT)):
        options.add_list(parser, f"--{name}", kind=options.numbers, default=[default], metavar="W,...",
                         help=f"{name.replace('-', ' ')}s")
    for name, default in (("content-layers", profiles.CONTENT_LAYERS), ("style-layers", profiles.STYLE_LAYERS)):
        parser.add_argument(f"--{name}", action=LayerSets, default=[tuple(default)], metavar="L,...",
                            help=f"one set of {name.replace('-', ' ')} per use of the option "
                            f"(default: {','.join(default)})")
    options.add_list(parser, "--init", default=[profiles.INIT], help=f"starting images: {', '.join(INITS)}")
    for name, default, what in (("seed", profiles.SEED, "noise seeds"), ("size", profiles.SIZE, "longest sides (px)"),
                                ("steps", profiles.STEPS, "evaluations per optimization")):
        options.add_list(parser, f"--{name}", kind=integers, default=[default], metavar="N,...", help=what)
    options.add_list(parser, "--rows", metavar="AXIS,...",
                     help="swept axes down the contact sheet; the swept axes named neither here nor in --columns "
                     "are added to them")
    parser.add_argument("--columns", metavar="AXIS", help="swept axis across (default: the one with most values)")
    parser.add_argument("--output", "-o", required=True, type=Path, help="folder for the sheet, tables and pictures")
    parser.add_argument("--max-cells", type=int, default=profiles.SWEEP_MAX_CELLS, metavar="N",
                        help="run a grid of up to N cells; a larger one is refused before any work")
    options.add_model_options(parser)
    options.add_executor_options(parser)
    parser.set_defaults(handler=_sweep)


# The options of `nst sweep` that change no picture, hence no cell's key, and why (tests walk every option:
# each one changes the cells' keys or is named here).
NOT_IN_PICTURES = {
    "output": "where the files go",
    "rows": "the contact sheet's layout",
    "columns": "the contact sheet's layout",
    "executor": "where the cells run: pixels follow the threads per optimization, whichever executor runs them",
    "scheduler": "where the cells run (as --executor)",
    "max_cells": "how large a grid runs unasked: a refusal before any work, never a different picture",
}


def sweep_arguments(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``sweep.sweep`` that the options give (the output folder and the axes
    included)."""
    axes = {
        "content": args.content or [None],
        "style": args.style or [None],
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "tv_weight": args.tv_weight,
        "content_layers": args.content_layers,
        "style_layers": args.style_layers,
        "init": args.init,
        "seed": args.seed,
        "size": args.size,
        "steps": args.steps,
    }
    return dict(
        output=args.output,
        axes=axes,
        weights=args.weights,
        pooling=args.pooling,
        precision=args.precision,
        pre_relu=args.pre_relu,
        device=args.device,
        executor=args.executor,
        scheduler=args.scheduler,
        threads=options.check_threads(args),
        rows=args.rows,
        columns=args.columns,
        max_cells=args.max_cells,
    )


def _sweep(args: argparse.Namespace) -> None:
    from ..sweep import sweep

    if not args.content and not args.style:
        raise ValueError("Give --content, --style or both.")
    check_folder(args.output, "--output")
    result = sweep(**sweep_arguments(args))
    if result.failed:
        raise SystemExit(1)
