"""``minos-networks demo`` and ``bench``: the commands that show what the library does, and how fast."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from .. import demo
from .exits import EXIT_FAILURE
from .options import Commands

__all__ = ["add_bench_parser", "add_demo_parser", "bench_command", "benchmark_roots"]


def add_demo_parser(commands: Commands) -> None:
    """Add ``demo``."""
    parser = commands.add_parser(
        "demo", help="two services on an embedded broker: HTTP, commands, events, replies, a periodic task"
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run a service with an embedded broker and a client talking to it."""
    return demo.run()


def add_bench_parser(commands: Commands) -> None:
    """Add ``bench``, for its help only: ``main`` hands everything after ``bench`` to :func:`bench_command`."""
    commands.add_parser(
        "bench",
        help="run the benchmarks of the source tree: python -m benchmarks [ARGS ...] (see bench --help)",
        description="Pass every argument to `python -m benchmarks` in the source tree (the working directory or "
        "the clone this package was installed from). Exit codes: those of the benchmarks (0 ok, 2 usage), "
        "1 when there is no benchmarks/ folder.",
        add_help=False,
    )


def benchmark_roots() -> list[Path]:
    """Where a source tree with ``benchmarks/`` may be: the package's own tree, then the working directory."""
    # src/minos/networks/cli/showcase.py -> the repository root, when installed from a clone (make install).
    return [Path(__file__).resolve().parents[4], Path.cwd()]


def bench_command(arguments: list[str]) -> int:
    """Run ``python -m benchmarks ARGUMENTS`` in the source tree; its exit code, or 1 without the tree."""
    roots = benchmark_roots()
    root = next((root for root in roots if (root / "benchmarks" / "__main__.py").is_file()), None)
    if root is None:
        print(
            "minos-networks bench: no benchmarks/ folder here: the benchmarks ship with the source tree, not "
            "with the installed package; run this from a clone of the repository (make install), looked in "
            + ", ".join(str(root) for root in roots),
            file=sys.stderr,
        )
        return EXIT_FAILURE
    # The source tree goes on the path, and the working directory stays: relative --json/--plot paths are the user's.
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", *arguments], env={**os.environ, "PYTHONPATH": path}
    )
    try:
        return process.wait()
    except KeyboardInterrupt:  # the terminal's SIGINT reached the benchmarks too: let them end
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return 128 + signal.SIGINT
