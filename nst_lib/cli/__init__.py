"""Command line: ``python -m nst_lib`` or ``nst``.

Every subcommand and every option is declared in this package, shared
options once (``options``); the library never imports it. Every user error
ends in one sentence on stderr and exit status 2; nothing is written unless
the run succeeds (outputs are written atomically). Ctrl-C and SIGTERM stop a
run alike, leave no temporary file, and end in one line that says what was
written and what was not (exit status 130, or 143 for SIGTERM); once a
command has ended, Ctrl-C ends the process at once.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings

from ..files import USER_ERRORS, Terminated, terminate_as_interrupt
from ..vgg import LAYER_NAMES
from . import generators, report, sweep, transfer


class Parser(argparse.ArgumentParser):
    """Refuses a malformed command line in one sentence (the option and what is wrong with it), as every
    other user error, instead of argparse's usage lines; each subcommand's parser is one of these too."""

    def error(self, message):
        self.exit(2, f"error: {message} ({self.prog} --help lists the options).\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
        with terminate_as_interrupt(), warnings.catch_warnings():
            warnings.showwarning = _say_warning
            args.handler(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        say_interrupted(stop, args)
        return 143 if _by_sigterm(stop) else 130
    return 0


def _say_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (an image stretched, or enlarged many times) as one line on stderr, as errors are said."""
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def run() -> None:
    """The program ``nst``: ``main``, then exit with its status.

    Everything is written and said by then; what remains is Python's exit,
    which runs the exit handlers of torch and other libraries. A Ctrl-C then
    would interrupt one of them and print its traceback, so from here on
    SIGINT ends the process at once, as it does a program without handlers."""
    try:
        status = main()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream
                stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(status)


def say_interrupted(stop: KeyboardInterrupt, args: argparse.Namespace) -> None:
    """One line on stderr that says what the stopped command wrote and what it did not: a command's own
    ``args.on_interrupt()``, else the interrupt's own message, else nothing was written.

    The line starts afresh: on a terminal the line of a progress bar cut short is cleared first."""
    on_interrupt = getattr(args, "on_interrupt", None)
    text = on_interrupt() if on_interrupt is not None else str(stop) or "nothing was written."
    start = "\r\033[K" if sys.stderr.isatty() else "\n"
    sys.stderr.write(f"{start}interrupted: {text}\n")
    sys.stderr.flush()


def _by_sigterm(stop: BaseException | None) -> bool:
    while stop is not None:
        if isinstance(stop, Terminated):
            return True
        stop = stop.__context__
    return False
