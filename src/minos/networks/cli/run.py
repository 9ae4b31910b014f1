"""``minos-networks run``: the service a configuration file describes, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

from minos.common import Config, ConfigError

from ..actors import run_main
from ..system import ServiceRunner, check_config, configure_logging, log_settings, tune_gc
from .config_file import load_config
from .exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, describe_error, print_problems, write_stderr
from .options import Commands, add_log_options

__all__ = ["EXIT_GRACE", "READY_LINE", "add_parser", "run_command"]

READY_LINE: Final = "minos-networks run:"
"""``run`` prints ``minos-networks run: <name> ready broker=... http=... periodic=N`` once it serves."""

EXIT_GRACE: Final = 5.0
"""Seconds the process gets, beyond the service's whole stop bound, to exit after the first signal."""


def add_parser(commands: Commands) -> None:
    """Add ``run CONFIG.yml [--log-level LEVEL] [--log-format FORMAT]``."""
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
    add_log_options(
        run, "logging.level of the config, else WARNING", "logging.format of the config, else text"
    )
    run.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return run_command(args.config, log_level=args.log_level, log_format=args.log_format)


def run_command(path: str | Config, *, log_level: str | None = None, log_format: str | None = None) -> int:
    """Run the service ``path`` describes until SIGTERM or SIGINT (see the ``run`` help for exit codes).

    Args:
        path: The configuration file, or a Config already read.
        log_level: Overrides ``logging.level`` of the file (WARNING by default).
        log_format: Overrides ``logging.format`` of the file (``text`` by default, or ``json``).
    """
    prefix = "minos-networks run"
    signals = _Signals(prefix)
    signals.install()
    config = load_config(path, prefix, check=lambda config: [])
    if config is None:
        return EXIT_CONFIG
    try:
        level, configured_format = log_settings(config)
    except ConfigError:  # check_config below reports it with every other problem
        level, configured_format = "WARNING", "text"
    # Logging first, then the notes on a 0.7 file, in the service's log format, then the whole check.
    configure_logging(log_level or level, log_format or configured_format, service=config.name)
    config.log_notes()
    problems = check_config(config)
    if problems:
        print_problems(prefix, config.source, problems)
        return EXIT_CONFIG
    try:
        runner = ServiceRunner.from_config(config, check=False)
    except ConfigError as error:
        print_problems(prefix, config.source, [error])
        return EXIT_CONFIG
    except Exception as error:
        print(f"{prefix}: {config.name}: cannot build the service: {error!r}", file=sys.stderr)
        return EXIT_FAILURE
    signals.bound = runner.stop_bound + EXIT_GRACE
    tune_gc()  # the service is built: what is alive now stays, and messages come next
    code = run_main(_serve(runner, signals, prefix))
    sys.stdout.flush()
    sys.stderr.flush()
    if code != EXIT_OK:
        os._exit(code)  # a part that did not stop may hold a thread the interpreter would wait for
    return code


async def _serve(runner: ServiceRunner, signals: _Signals, prefix: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals.on_first = lambda: loop.call_soon_threadsafe(stop.set)
    if signals.received is not None:
        return EXIT_OK  # told to stop before anything started
    try:
        await runner.start()
    except Exception as error:
        print(f"{prefix}: {runner.name} failed to start: {describe_error(error)}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{READY_LINE} {runner.name} ready {runner.describe()}", flush=True)
    if signals.received is None:
        await stop.wait()
    print(f"{prefix}: {runner.name} stopping, within {runner.stop_bound:.0f} s", flush=True)
    failed = await runner.stop()
    if failed:
        print(f"{prefix}: {runner.name}: these parts did not stop well: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{prefix}: {runner.name} stopped", flush=True)
    return EXIT_OK


class _Signals:
    """SIGTERM and SIGINT for ``run``: the first starts a graceful stop, a second one exits at once.

    The handlers are plain ``signal`` handlers, so they run even while the event loop is busy; the first
    also arms a watchdog that ends the process if the stop (or the interpreter's exit) overruns ``bound``.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.bound = 60.0
        self.received: int | None = None
        self.on_first: Callable[[], object] | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            if self.on_first is not None:
                self.on_first()
            watchdog = threading.Timer(self.bound, self._overran)
            watchdog.daemon = True
            watchdog.start()
            return
        write_stderr(
            f"{self.prefix}: second signal ({name}) during the stop: exiting now, work in flight is lost"
        )
        os._exit(128 + signum)

    def _overran(self) -> None:
        write_stderr(f"{self.prefix}: the stop overran its bound of {self.bound:.0f} s; exiting now")
        os._exit(EXIT_FAILURE)
