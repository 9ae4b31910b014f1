"""The ``minos-networks`` command line (also ``python -m minos.networks``).

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 configuration error (nothing was started);
``run`` also exits 130 (SIGINT) or 143 (SIGTERM) when a second signal cuts its graceful stop short.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3

EXIT_CLOSED_PIPE = 128 + signal.SIGPIPE
"""The reader of stdout went away (``minos-networks docs ... | head``): what a tool killed by SIGPIPE exits with."""

DESCRIPTION = """\
The minos-networks command line (also: python -m minos.networks).

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 configuration error (nothing was started);
run also exits 130 (SIGINT) or 143 (SIGTERM) when a second signal cuts its graceful stop short, and
every command exits 141 without a word when the reader of its output goes away (| head).
"""

READY_LINE = "minos-networks broker: serving on"
"""Printed (then the endpoints) once the broker has bound everything; scripts may wait for it."""


def _demo() -> int:
    """Run a service with an embedded broker and a client talking to it."""
    from .demo import run

    return run()


def _broker(
    binds: list[str],
    max_messages: int,
    heartbeat_interval: float,
    curve_secret_key: str | None = None,
    curve_allowed_clients: str | None = None,
    max_frame_size: int | None = None,
    stats_interval: float | None = None,
) -> int:
    """Run a broker process until SIGTERM or SIGINT; with ``stats_interval``, print a stats line that often."""
    from .protocol import DEFAULT_MAX_FRAME_SIZE
    from .transports import BrokerBindError, BrokerServer, CurveSettings, KeyFileError

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

    from .actors import run_main
    from .system.gc_tuning import tune_gc

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
        from .system.stats import print_stats

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


def _benchmark_roots() -> list[Path]:
    """Where a source tree with ``benchmarks/`` may be: the package's own tree, then the working directory."""
    # src/minos/networks/__main__.py -> the repository root, when installed from a clone (make install).
    return [Path(__file__).resolve().parents[3], Path.cwd()]


def _bench(arguments: list[str]) -> int:
    """Run ``python -m benchmarks ARGUMENTS`` in the source tree; its exit code, or 1 without the tree."""
    root = next(
        (root for root in _benchmark_roots() if (root / "benchmarks" / "__main__.py").is_file()), None
    )
    if root is None:
        print(
            "minos-networks bench: no benchmarks/ folder here: the benchmarks ship with the source tree, not "
            "with the installed package; run this from a clone of the repository (make install), looked in "
            + ", ".join(str(root) for root in _benchmark_roots()),
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


def _keygen(directory: str, name: str) -> int:
    """Write a CURVE key pair (the secret file with mode 0600) and print the public key; 0 ok, 1 failure."""
    from .transports import create_keys, load_public

    try:
        public_file, secret_file = create_keys(directory, name)
    except OSError as error:
        print(f"minos-networks keygen: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(load_public(public_file).decode(), flush=True)
    print(
        f"minos-networks keygen: wrote {public_file} (public: give it to the broker's allowed clients, or to "
        f"clients as the server key) and {secret_file} (secret, mode 0600: keep it here)",
        file=sys.stderr,
    )
    return EXIT_OK


def _dead_letters(action: str, config_path: str, identifiers: list[UUID] | None, idle_timeout: float) -> int:
    """List or replay the dead letters of the service CONFIG describes; 0 ok, 1 failure."""
    from minos.common import Config, ConfigError

    from .actors import run_main
    from .brokers import DeadLetterQueue, broker_settings
    from .exceptions import MinosNetworkException

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


def _version() -> str:
    """The installed distribution's version, or a note saying it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("minos-networks")
    except PackageNotFoundError:
        return "unknown (the minos-networks distribution is not installed)"


def _json_content(text: str) -> object:
    """The message content a JSON argument gives; argparse turns the ValueError into a usage error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {text!r}") from error


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _log_level(text: str) -> str:
    from .system.logs import LOG_LEVELS

    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}; use one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def _add_log_options(parser: argparse.ArgumentParser, level_default: str, format_default: str) -> None:
    parser.add_argument(
        "--log-level",
        type=_log_level,
        metavar="LEVEL",
        help=f"DEBUG, INFO, WARNING or ERROR ({level_default})",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text lines, or one JSON object per line with time, level, logger, message, service, "
        f"message_id and topic ({format_default})",
    )


def _add_service_commands(commands: Any) -> None:
    """The commands that act on a service's configuration file: run, check-config, publish, docs."""
    run = commands.add_parser(
        "run",
        help="run the service a configuration file describes, until SIGTERM or SIGINT",
        description="Check CONFIG.yml, then start its ports in order (broker, HTTP, periodic, discovery), "
        "print 'minos-networks run: NAME ready broker=... http=URL periodic=N' and serve. The first SIGTERM "
        "or SIGINT stops intake and lets work in flight finish within the configured timeouts; a second one "
        "exits at once. Exit codes: 0 stopped, 1 failed to start or to stop within its bound, 2 usage, "
        "3 configuration error (nothing started), 130/143 a second SIGINT/SIGTERM cut the stop short.",
    )
    run.add_argument("config", metavar="CONFIG.yml", help="the service's configuration file")
    _add_log_options(
        run, "logging.level of the config, else WARNING", "logging.format of the config, else text"
    )
    check = commands.add_parser(
        "check-config",
        help="check a configuration file and print it after environment overrides",
        description="Check CONFIG.yml as `run` would, without starting anything, and print the effective "
        "configuration (after MINOS_* overrides). Problems are printed as FILE: KEY: PROBLEM. Exit codes: "
        "0 valid, 2 usage, 3 configuration error.",
    )
    check.add_argument("config", metavar="CONFIG.yml", help="the service's configuration file")
    check.add_argument(
        "--format", dest="output", choices=("yaml", "json"), default="yaml", help="yaml or json"
    )
    publish = commands.add_parser(
        "publish",
        help="send one message through the broker a configuration file names",
        description="Send one message (its content parsed from JSON) to TOPIC through a BrokerClient built "
        'from CONFIG.yml. With --wait-reply, print the reply as JSON {"status": ..., "content": ...}. '
        "Exit codes: 0 sent (or a 2xx reply), 1 failure, timeout or a reply with another status, 2 usage, "
        "3 configuration error.",
    )
    publish.add_argument("config", metavar="CONFIG.yml", help="the configuration naming the broker")
    publish.add_argument("topic", metavar="TOPIC", help="where to send the message")
    publish.add_argument(
        "content", metavar="JSON", type=_json_content, help="the content, e.g. '{\"id\": 1}'"
    )
    publish.add_argument("--wait-reply", action="store_true", help="wait for the reply and print it")
    publish.add_argument(
        "--timeout", type=_positive, default=10.0, help="seconds for the whole exchange (default 10)"
    )
    docs = commands.add_parser(
        "docs",
        help="print the OpenAPI / AsyncAPI documents of the configured services as JSON",
        description="Print the OpenAPI 3.1 (--openapi), the AsyncAPI 3.0 (--asyncapi) or both documents "
        '({"openapi": ..., "asyncapi": ...}) of CONFIG.yml\'s services. Exit codes: 0 printed, '
        "2 usage, 3 configuration error (a service that does not import).",
    )
    docs.add_argument("config", metavar="CONFIG.yml", help="the service's configuration file")
    which = docs.add_mutually_exclusive_group()
    which.add_argument("--openapi", dest="which", action="store_const", const="openapi", help="OpenAPI only")
    which.add_argument(
        "--asyncapi", dest="which", action="store_const", const="asyncapi", help="AsyncAPI only"
    )


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


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="minos-networks", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo", help="two services on an embedded broker: HTTP, commands, events, replies, a periodic task"
    )
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
    _add_log_options(broker, "WARNING", "text")
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
        "--stats-interval", type=_positive, default=1.0, metavar="SECONDS", help="seconds between lines (1)"
    )
    keygen = commands.add_parser(
        "keygen",
        help="write a CURVE key pair: DIR/NAME.key (public) and DIR/NAME.key_secret (mode 0600)",
        description="Write a CURVE key pair and print its public key. Exit codes: 0 written, 1 could not "
        "write (or the files exist already), 2 usage.",
    )
    keygen.add_argument("directory", metavar="DIR", help="where to write the key files (created if missing)")
    keygen.add_argument("name", metavar="NAME", help="the key pair's name, e.g. broker or orders-service")
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
    _add_service_commands(commands)
    commands.add_parser(
        "bench",
        help="run the benchmarks of the source tree: python -m benchmarks [ARGS ...] (see bench --help)",
        description="Pass every argument to `python -m benchmarks` in the source tree (the working directory or "
        "the clone this package was installed from). Exit codes: those of the benchmarks (0 ok, 2 usage), "
        "1 when there is no benchmarks/ folder.",
        add_help=False,
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # everything after it belongs to the benchmarks, --help included
        return _bench(arguments[1:])
    args = parser.parse_args(arguments)
    if args.command in ("run", "check-config", "publish", "docs"):
        return _service_command(args)
    if args.command == "demo":
        return _demo()
    if args.command == "broker":
        from .system.logs import configure_logging

        configure_logging(args.log_level or "WARNING", args.log_format or "text", service="broker")
        if (args.curve_secret_key is None) != (args.curve_allowed_clients is None):
            parser.error("--curve-secret-key and --curve-allowed-clients go together")
        return _broker(
            args.bind,
            args.max_messages,
            args.heartbeat_interval,
            args.curve_secret_key,
            args.curve_allowed_clients,
            args.max_frame_size,
            args.stats_interval if args.stats else None,
        )
    if args.command == "keygen":
        return _keygen(args.directory, args.name)
    if args.command == "dead-letters":
        if args.action == "list" and args.identifiers:
            parser.error("--id only goes with replay")
        if args.idle_timeout <= 0:
            parser.error(f"--idle-timeout must be positive, got {args.idle_timeout!r}")
        return _dead_letters(args.action, args.config, args.identifiers, args.idle_timeout)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _service_command(args: argparse.Namespace) -> int:
    """Dispatch run, check-config, publish and docs to ``system.commands``."""
    from .system import commands

    if args.command == "run":
        return commands.run_command(args.config, log_level=args.log_level, log_format=args.log_format)
    if args.command == "check-config":
        return commands.check_config_command(args.config, args.output)
    if args.command == "publish":
        return commands.publish_command(
            args.config, args.topic, args.content, wait_reply=args.wait_reply, timeout=args.timeout
        )
    return commands.docs_command(args.config, args.which)


if __name__ == "__main__":
    sys.exit(main())
