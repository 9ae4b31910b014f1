"""How a command ends: its exit codes, and the lines it prints on stderr when something is wrong."""

from __future__ import annotations

import os
import signal
import sys
from typing import Final

from minos.common import ConfigError, MinosException

__all__ = [
    "EXIT_CLOSED_PIPE",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "describe_error",
    "print_problems",
    "write_stderr",
]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3
"""The configuration is wrong; nothing was started."""

EXIT_CLOSED_PIPE: Final = 128 + signal.SIGPIPE
"""The reader of stdout went away (``minos-networks docs ... | head``): what a tool killed by SIGPIPE exits with."""


def describe_error(error: BaseException) -> str:
    """``error`` on one line: our errors by their message (it says what to do), others with their type
    too; and the direct cause, when there is one."""
    text = str(error) if isinstance(error, MinosException) else f"{type(error).__name__}: {error}"
    if error.__cause__ is not None:
        text += f" (caused by {describe_error(error.__cause__)})"
    return " ".join(text.split())


def print_problems(prefix: str, path: str, problems: list[ConfigError]) -> None:
    """Print each problem as ``PREFIX: FILE: KEY: PROBLEM``, then how many there were."""
    for problem in problems:
        # The line names the file and the key already: "Config key 'k' in FILE: " would say them twice.
        text = str(problem).removeprefix(f"Config key {problem.key!r} in {problem.source}: ")
        print(f"{prefix}: {path}: {problem.key or '(file)'}: {text}", file=sys.stderr)
    print(
        f"{prefix}: {path} has {len(problems)} configuration problem(s); nothing was started", file=sys.stderr
    )


def write_stderr(text: str) -> None:
    """Write a line on stderr, safely from a signal handler."""
    # os.write, not print: a signal handler may interrupt a print in progress on the same stream.
    os.write(2, (text + "\n").encode())
