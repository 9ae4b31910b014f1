"""What several commands parse alike: positive seconds, JSON content, the log options."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TypeAlias

from ..system.logs import LOG_LEVELS

__all__ = ["Commands", "Handler", "add_log_options", "json_content", "log_level", "positive"]

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where each command module adds its subparser (``ArgumentParser.add_subparsers()``)."""

Handler: TypeAlias = Callable[[argparse.Namespace, argparse.ArgumentParser], int]
"""What a subparser's ``handler`` default is: it runs the command, given the parsed arguments and the
top-level parser (whose ``error`` reports a usage error), and returns the exit code."""


def json_content(text: str) -> object:
    """The message content a JSON argument gives; argparse turns the ValueError into a usage error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {text!r}") from error


def positive(text: str) -> float:
    """A positive number of seconds."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


# argparse names the type in the usage error of a non-number ("invalid _positive value: 'x'"): the name
# the command line has always printed, kept so its output does not change.
positive.__name__ = "_positive"


def log_level(text: str) -> str:
    """A log level's name, upper-cased."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}; use one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def add_log_options(parser: argparse.ArgumentParser, level_default: str, format_default: str) -> None:
    """Add ``--log-level`` and ``--log-format``, whose help names their defaults."""
    parser.add_argument(
        "--log-level",
        type=log_level,
        metavar="LEVEL",
        help=f"DEBUG, INFO, WARNING or ERROR ({level_default})",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text lines, or one JSON object per line with time, level, logger, message, service, "
        f"message_id and topic ({format_default})",
    )
