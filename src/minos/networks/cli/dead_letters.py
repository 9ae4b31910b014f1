"""``minos-networks dead-letters``: list or replay the messages whose handlers failed every attempt."""

from __future__ import annotations

import argparse
import sys
from uuid import UUID

from minos.common import Config, ConfigError

from ..actors import run_main
from ..brokers import DeadLetterQueue, broker_settings
from ..exceptions import MinosNetworkException
from .exits import EXIT_FAILURE, EXIT_OK
from .options import Commands

__all__ = ["add_parser", "dead_letters_command"]


def add_parser(commands: Commands) -> None:
    """Add ``dead-letters list|replay CONFIG.yml [--id UUID ...] [--idle-timeout SECONDS]``."""
    dead_letters = commands.add_parser(
        "dead-letters",
        help="list or replay the messages whose handlers failed every attempt",
        description="List or replay a service's dead letters on its broker process. Exit codes: 0 ok, "
        "1 failure (bad config, broker unreachable, an --id not found), 2 usage.",
    )
    dead_letters.add_argument("action", choices=("list", "replay"), help="list (keeps them) or replay")
    dead_letters.add_argument("config", metavar="CONFIG.yml", help="the service's configuration file")
    dead_letters.add_argument(
        "--id",
        dest="identifiers",
        action="append",
        type=UUID,
        metavar="UUID",
        help="replay only the dead letter of this original message identifier (repeatable)",
    )
    dead_letters.add_argument(
        "--idle-timeout", type=float, default=1.0, help="seconds without a new dead letter that end the scan"
    )
    dead_letters.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.action == "list" and args.identifiers:
        parser.error("--id only goes with replay")
    if args.idle_timeout <= 0:
        parser.error(f"--idle-timeout must be positive, got {args.idle_timeout!r}")
    return dead_letters_command(args.action, args.config, args.identifiers, args.idle_timeout)


def dead_letters_command(
    action: str, config_path: str, identifiers: list[UUID] | None, idle_timeout: float
) -> int:
    """List or replay the dead letters of the service CONFIG describes; 0 ok, 1 failure."""
    prefix = f"minos-networks dead-letters {action}"
    try:
        config = Config(config_path)
        settings = broker_settings(config)
    except ConfigError as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if settings.transport != "zmq" or settings.endpoint.startswith("inproc://"):
        print(
            f"{prefix}: {config_path} names the broker {settings.endpoint!r}, which only its own process "
            "reaches; point interfaces.broker.endpoint at the broker process (ipc:// or tcp://)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    queue = DeadLetterQueue.from_config(config, idle_timeout=idle_timeout, settings=settings)

    async def run() -> int:
        if action == "list":
            letters = await queue.list()
            for letter in letters:
                print(letter.describe(), flush=True)
            print(f"{prefix}: {len(letters)} dead letters on {queue.topic!r}", file=sys.stderr)
            return EXIT_OK
        replayed = await queue.replay(identifiers)
        print(f"{prefix}: replayed {replayed} dead letters from {queue.topic!r}", flush=True)
        if identifiers is not None and replayed < len(set(identifiers)):
            print(
                f"{prefix}: only {replayed} of {len(set(identifiers))} identifiers were found",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        return EXIT_OK

    try:
        return run_main(run())
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except (MinosNetworkException, OSError) as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return EXIT_FAILURE
