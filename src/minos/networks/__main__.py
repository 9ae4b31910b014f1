"""The ``minos-networks`` command line (also ``python -m minos.networks``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

READY_LINE = "minos-networks broker: serving on"
"""Printed (then the endpoints) once the broker has bound everything; scripts may wait for it."""


def _demo() -> int:
    """Run a service with an embedded broker and a client talking to it."""
    from .demo import run

    return run()


def _broker(binds: list[str], max_messages: int, heartbeat_interval: float) -> int:
    """Run a broker process until SIGTERM or SIGINT."""
    from .transports import BrokerBindError, BrokerServer

    server = BrokerServer(binds, max_messages=max_messages, heartbeat_interval=heartbeat_interval)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.stop)
        task = loop.create_task(server.run())
        bound = loop.run_in_executor(None, server.wait_started, 10.0)
        waiting: set[asyncio.Future[Any]] = {task, bound}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and await bound:
            print(READY_LINE, " ".join(server.endpoints), flush=True)
        await task

    try:
        asyncio.run(serve())
    except BrokerBindError as error:
        print(f"minos-networks broker: {error}", file=sys.stderr)
        return EXIT_FAILURE
    stats = server.stats
    print(
        f"minos-networks broker: stopped; published {stats.published}, delivered {stats.delivered}, "
        f"redelivered {stats.redelivered}, still held {stats.size}",
        flush=True,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failure, 2 usage error)."""
    parser = argparse.ArgumentParser(prog="minos-networks", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="run a service with an embedded broker and send it requests")
    broker = commands.add_parser(
        "broker",
        help="run a broker process that services reach over ipc:// or tcp://",
        description="Run a broker until SIGTERM or SIGINT. Exit codes: 0 stopped, 1 could not bind, 2 usage.",
    )
    broker.add_argument(
        "--bind",
        action="append",
        required=True,
        metavar="ENDPOINT",
        help="where to listen, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/minos.sock (repeatable)",
    )
    broker.add_argument(
        "--max-messages", type=int, default=1_000_000, help="messages held before publishers wait"
    )
    broker.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds; 3 missed = peer lost")
    broker.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo()
    if args.command == "broker":
        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return _broker(args.bind, args.max_messages, args.heartbeat_interval)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
