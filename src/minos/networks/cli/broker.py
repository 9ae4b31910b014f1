"""``minos-networks broker``: a broker process that services reach over ipc:// or tcp://."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, Final

from ..actors import run_main
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from ..system import configure_logging, tune_gc
from ..transports import BrokerBindError, BrokerServer, CurveSettings, KeyFileError
from .exits import EXIT_FAILURE, EXIT_OK
from .live_view import print_stats
from .options import Commands, add_log_options, positive

__all__ = ["READY_LINE", "add_parser", "broker_command"]

READY_LINE: Final = "minos-networks broker: serving on"
"""Printed (then the endpoints) once the broker has bound everything; scripts may wait for it."""


def add_parser(commands: Commands) -> None:
    """Add ``broker --bind ENDPOINT [--bind ...] [options]``."""
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
    add_log_options(broker, "WARNING", "text")
    broker.add_argument(
        "--curve-secret-key", metavar="FILE", help="the broker's NAME.key_secret (turns CURVE on)"
    )
    broker.add_argument(
        "--curve-allowed-clients", metavar="DIR", help="a directory of the NAME.key files of admitted clients"
    )
    broker.add_argument("--max-frame-size", type=int, metavar="BYTES", help="largest message body (16 MiB)")
    broker.add_argument(
        "--stats",
        action="store_true",
        help="a live view: every second, print published/delivered/acked per second, messages held and "
        "queued, the deepest queue, peers, and the totals (redelivered, refused, rejected frames ...)",
    )
    broker.add_argument(
        "--stats-interval", type=positive, default=1.0, metavar="SECONDS", help="seconds between lines (1)"
    )
    broker.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    configure_logging(args.log_level or "WARNING", args.log_format or "text", service="broker")
    if (args.curve_secret_key is None) != (args.curve_allowed_clients is None):
        parser.error("--curve-secret-key and --curve-allowed-clients go together")
    return broker_command(
        args.bind,
        args.max_messages,
        args.heartbeat_interval,
        args.curve_secret_key,
        args.curve_allowed_clients,
        args.max_frame_size,
        args.stats_interval if args.stats else None,
    )


def broker_command(
    binds: list[str],
    max_messages: int,
    heartbeat_interval: float,
    curve_secret_key: str | None = None,
    curve_allowed_clients: str | None = None,
    max_frame_size: int | None = None,
    stats_interval: float | None = None,
) -> int:
    """Run a broker process until SIGTERM or SIGINT; with ``stats_interval``, print a stats line that often."""
    curve = None
    if curve_secret_key is not None:
        try:
            curve = CurveSettings(
                server_secret_key=Path(curve_secret_key), allowed_clients=Path(curve_allowed_clients or "")
            ).server()
        except KeyFileError as error:
            print(f"minos-networks broker: {error}", file=sys.stderr)
            return EXIT_FAILURE
    server = BrokerServer(
        binds,
        max_messages=max_messages,
        heartbeat_interval=heartbeat_interval,
        curve=curve,
        max_frame_size=max_frame_size or DEFAULT_MAX_FRAME_SIZE,
    )
    tune_gc()  # a broker allocates a few objects per message and may hold a million of them

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
        if stats_interval is None or task.done():
            await task
            return
        view = loop.create_task(print_stats(server, stats_interval))
        try:
            await task
        finally:
            view.cancel()
            await asyncio.gather(view, return_exceptions=True)

    try:
        run_main(serve())
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
