"""``nst report``: run the notebooks with papermill and build the HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..images import MAX_SIZE, MIN_SIZE
from ..profiles import PROFILES
from . import options


def register(commands) -> None:
    parser = commands.add_parser(
        "report",
        help="run the notebooks with papermill and build the HTML report",
        description="Run the numbered notebooks with papermill and render report/<profile>/index.html "
        "(in the current folder unless --output says otherwise). "
        "Unchanged sections are reused; the previous report stays until the new one is complete.",
        formatter_class=options.HelpFormatter,
    )
    parser.add_argument("--profile", choices=list(PROFILES), default="standard", help="sizes and steps")
    parser.add_argument("--size", type=int, help=f"override the profile's image size (px, {MIN_SIZE}-{MAX_SIZE})")
    parser.add_argument("--steps", type=int, help="override the profile's evaluations per optimization")
    options.add_weights_option(parser)
    options.add_device_option(parser)
    parser.add_argument("--output", type=Path, help="report folder (default: report/<profile> in the current folder)")
    options.add_list(
        parser,
        "--only",
        metavar="NN,...",
        help="rebuild only these sections, e.g. 01,03; the report's other sections are kept as they are",
    )
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> None:
    from .. import report
    from ..vgg import pick_device

    pick_device(args.device)  # fail now, not inside the first notebook
    output = args.output or Path("report") / args.profile
    try:
        index = report.build(
            output,
            profile=args.profile,
            size=args.size,
            steps=args.steps,
            device=args.device,
            weights=args.weights,
            only=args.only,
        )
    except report.BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"report: {index}")
