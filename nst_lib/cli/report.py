"""``nst report``: run the notebooks with papermill and build the HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..images import MAX_SIZE, MIN_SIZE
from ..profiles import DEFAULT_PROFILE, PROFILES
from . import options


def register(commands) -> None:
    parser = commands.add_parser(
        "report",
        help="run the notebooks with papermill and build the HTML report",
        description="Run the numbered notebooks with papermill and render report/<profile>/index.html "
        "(in the current folder unless --output says otherwise). "
        "Unchanged sections are reused, and an optimization that this build or an earlier one finished (kept in "
        "<report>/results) is read back, not run again; the previous report stays until the new one is complete.",
        formatter_class=options.HelpFormatter,
    )
    parser.add_argument("--profile", choices=list(PROFILES), default=DEFAULT_PROFILE, help="sizes and steps")
    parser.add_argument("--size", type=int, help=f"override the profile's image size (px, {MIN_SIZE}-{MAX_SIZE})")
    parser.add_argument("--steps", type=int, help="override the profile's evaluations per optimization")
    options.add_weights_option(parser)
    options.add_precision_option(parser)
    options.add_device_option(parser)
    parser.add_argument("--output", type=Path, help="report folder (default: report/<profile> in the current folder)")
    options.add_list(
        parser,
        "--only",
        metavar="NN,...",
        help="rebuild only these sections, e.g. 01,03; the report's other sections are kept as they are",
    )
    options.add_executor_options(parser)
    pictures = parser.add_argument_group(
        "your pictures", "Any of these adds the section 'Your pictures': each photograph with each style, from noise "
        "at style weight 1e3 and from the photograph at 1e4."
    )
    options.add_list(pictures, "--content", metavar="PATH_OR_NAME,...", help="your photographs (files or named images)")
    options.add_list(pictures, "--style", metavar="PATH_OR_NAME,...",
                     help="styles for your photographs (files or named images; default starry_night)")
    pictures.add_argument("--album", type=Path, metavar="DIR", help="a folder whose images join your photographs")
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
            precision=args.precision,
            only=args.only,
            executor=args.executor,
            scheduler=args.scheduler,
            threads=options.check_threads(args),
            photos=args.content or [],
            paintings=args.style or [],
            album=args.album,
        )
    except report.BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"report: {index}")
