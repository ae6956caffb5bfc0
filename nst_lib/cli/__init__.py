"""Command line: ``python -m nst_lib`` or ``nst``.

Every subcommand and every option is declared in this package, shared
options once (``options``); the library never imports it. Every user error
ends in one sentence on stderr and exit status 2; nothing is written unless
the run succeeds (outputs are written atomically).
"""

from __future__ import annotations

import argparse
import sys

from ..assets import AssetError
from ..images import ImageError
from ..vgg import LAYER_NAMES, WeightsError
from . import generators, report, sweep, transfer

USER_ERRORS = (AssetError, ImageError, WeightsError, ValueError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst",
        description="Neural style transfer after Gatys et al. (2016), with a VGG-19 that works offline.",
        epilog=f"Layer names: {', '.join(n for n in LAYER_NAMES if n.startswith('conv'))} (and relu/pool).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (transfer, generators, sweep, report):
        module.register(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written.", file=sys.stderr)
        return 130
    return 0
