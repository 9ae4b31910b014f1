"""The top of the command line: the parser every command module adds itself to, and ``main``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from . import broker, check_config, dead_letters, docs, keygen, publish, run, showcase
from .exits import EXIT_CLOSED_PIPE, EXIT_USAGE

__all__ = ["DESCRIPTION", "build_parser", "main"]

DESCRIPTION = """\
The minos-networks command line (also: python -m minos.networks).

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 configuration error (nothing was started);
run also exits 130 (SIGINT) or 143 (SIGTERM) when a second signal cuts its graceful stop short, and
every command exits 141 without a word when the reader of its output goes away (| head).
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failure, 2 usage, 3 configuration error)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader closed the pipe: stop quietly, and keep Python from failing again at exit when it
        # flushes stdout into the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE


def build_parser() -> argparse.ArgumentParser:
    """The ``minos-networks`` parser: each command's subparser carries its ``handler`` (``options.Handler``)."""
    parser = argparse.ArgumentParser(
        prog="minos-networks", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    showcase.add_demo_parser(commands)
    broker.add_parser(commands)
    keygen.add_parser(commands)
    dead_letters.add_parser(commands)
    run.add_parser(commands)
    check_config.add_parser(commands)
    publish.add_parser(commands)
    docs.add_parser(commands)
    showcase.add_bench_parser(commands)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # everything after it belongs to the benchmarks, --help included
        return showcase.bench_command(arguments[1:])
    args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:  # no command
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = handler(args, parser)
    return code


def _version() -> str:
    """The installed distribution's version, or a note saying it is not installed."""
    try:
        return version("minos-networks")
    except PackageNotFoundError:
        return "unknown (the minos-networks distribution is not installed)"
