"""The service commands of the command line: ``run``, ``check-config``, ``publish`` and ``docs``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, Final

import yaml

from minos.common import Config, ConfigError, MinosException

from ..actors import run_main
from ..brokers import BrokerClient, BrokerPublisher, BrokerSettings, broker_settings
from .gc_tuning import tune_gc
from .logs import configure_logging, log_settings
from .runner import ServiceRunner, check_config, unknown_keys

__all__ = ["EXIT_CONFIG", "check_config_command", "docs_command", "publish_command", "run_command"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 3
"""The configuration is wrong; nothing was started."""

READY_LINE: Final = "minos-networks run:"
"""``run`` prints ``minos-networks run: <name> ready broker=... http=... periodic=N`` once it serves."""

EXIT_GRACE: Final = 5.0
"""Seconds the process gets, beyond the service's whole stop bound, to exit after the first signal."""


def load_config(
    path: str | Config, prefix: str, *, check: Callable[[Config], list[ConfigError]] = check_config
) -> Config | None:
    """Read and check ``path``, printing every problem on stderr as ``<file>: <key>: <problem>``.

    The service's modules are imported as ``python -m`` would find them: from the config file's
    directory and from the working directory (see :func:`add_import_paths`).

    Args:
        path: The YAML file, or a Config already read (``EntrypointLauncher``).
        prefix: Starts each printed line (the command's name).
        check: What to check beyond ``Config``'s own layout checks: :func:`check_config` (everything),
            :func:`unknown_keys` (the keys only: commands that build no service), or nothing (``run``,
            which runs :func:`check_config` itself once logging is set up).

    Returns:
        The configuration, or None when it has a problem.
    """
    add_import_paths(path.path if isinstance(path, Config) else path)
    try:
        config = path if isinstance(path, Config) else Config(path)
    except ConfigError as error:
        _print_problems(prefix, str(path), [error])
        return None
    problems = check(config)
    if problems:
        _print_problems(prefix, config.source, problems)
        return None
    return config


def add_import_paths(path: str | os.PathLike[str] | None) -> None:
    """Put the working directory and the directory of the config file ``path`` on ``sys.path``.

    A 0.7 service lists its own modules (``src.commands.CartCommandService``) relative to where it runs
    and where its config.yml lies; ``python -m`` puts the working directory first, the ``minos-networks``
    script puts its own directory there instead, so the command adds both (each once, at the end: an
    installed package of the same name still wins, as it would under ``python -m``).
    """
    places = [os.getcwd()]
    if path is not None:
        places.insert(0, str(Path(path).resolve().parent))
    present = {os.path.abspath(entry or os.curdir) for entry in sys.path}
    for place in places:
        if place not in present:
            sys.path.append(place)
            present.add(place)


def effective_config(config: Config) -> dict[str, Any]:
    """The whole configuration after environment overrides (and a 0.7 file's translation), as plain data."""
    return {key: config.get(key, None) for key in config.top_level_keys()}


def check_config_command(path: str, output: str) -> int:
    """Check ``path`` and print the effective configuration as ``output`` (yaml or json); 0 ok, 3 wrong."""
    prefix = "minos-networks check-config"
    configure_logging()  # the notes on a 0.7 file are warnings on stderr, beside the printed config
    config = load_config(path, prefix)
    if config is None:
        return EXIT_CONFIG
    data = effective_config(config)
    if output == "json":
        print(json.dumps(data, indent=2, default=str), flush=True)
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="", flush=True)
    print(f"{prefix}: {path} is valid", file=sys.stderr)
    return EXIT_OK


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
        _print_problems(prefix, config.source, problems)
        return EXIT_CONFIG
    try:
        runner = ServiceRunner.from_config(config, check=False)
    except ConfigError as error:
        _print_problems(prefix, config.source, [error])
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
        _write_stderr(
            f"{self.prefix}: second signal ({name}) during the stop: exiting now, work in flight is lost"
        )
        os._exit(128 + signum)

    def _overran(self) -> None:
        _write_stderr(f"{self.prefix}: the stop overran its bound of {self.bound:.0f} s; exiting now")
        os._exit(EXIT_FAILURE)


def publish_command(path: str, topic: str, content: object, *, wait_reply: bool, timeout: float) -> int:
    """Send one message through the broker ``path`` names; with ``wait_reply``, print the reply as JSON.

    Returns:
        0 sent (or replied with a 2xx status), 1 an error, a timeout or a non-2xx reply, 3 a wrong config.
    """
    prefix = "minos-networks publish"
    config = load_config(path, prefix, check=unknown_keys)
    if config is None:
        return EXIT_CONFIG
    try:
        settings = broker_settings(config)
    except ConfigError as error:
        _print_problems(prefix, path, [error])
        return EXIT_CONFIG
    endpoint = settings.endpoint
    if settings.transport == "zmq" and endpoint.startswith("inproc://"):
        # The service's own process reaches its embedded broker over inproc; another one needs a bind.
        reachable = [bind for bind in settings.bind if not bind.startswith("inproc://")]
        if not reachable:
            print(
                f"{prefix}: {path}: interfaces.broker.endpoint: {endpoint!r} is reachable from its own process "
                "only; give the embedded broker a `bind` endpoint (ipc:// or tcp://), or name the broker "
                "process's endpoint",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        endpoint = reachable[0]
        # What reading the file with interfaces.broker.endpoint and embedded overridden would give.
        settings = replace(settings, endpoint=endpoint, embedded=False)
    elif settings.transport != "zmq":
        print(
            f"{prefix}: {path}: interfaces.broker.transport: {settings.transport!r} is in-process only",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        return run_main(
            _publish(config, settings, topic, content, wait_reply=wait_reply, timeout=timeout, prefix=prefix)
        )
    except BrokenPipeError:
        raise  # the reader of the reply went away: main() ends quietly
    except Exception as error:
        print(f"{prefix}: {describe_error(error)} (broker {endpoint})", file=sys.stderr)
        return EXIT_FAILURE


async def _publish(
    config: Config,
    settings: BrokerSettings,
    topic: str,
    content: object,
    *,
    wait_reply: bool,
    timeout: float,
    prefix: str,
) -> int:
    from ..protocol import BrokerMessageV1, BrokerMessageV1Payload
    from ..transports import BrokerUnavailableError

    message = BrokerMessageV1(topic, BrokerMessageV1Payload(content))
    sender: BrokerClient | BrokerPublisher
    sender = (
        BrokerClient.from_config(config, settings=settings)
        if wait_reply
        else BrokerPublisher.from_config(config, durable=False, settings=settings)
    )
    try:
        # Connecting is bounded by interfaces.broker.connect_timeout, and fails with BrokerUnavailableError
        # naming the endpoint; only then does --timeout count, for the broker's acceptance and the reply.
        try:
            await sender.start()
        except BrokerUnavailableError as error:
            print(f"{prefix}: {error}", file=sys.stderr)
            return EXIT_FAILURE
        async with asyncio.timeout(timeout):
            await sender.send(message)
            if not isinstance(sender, BrokerClient):
                print(f"{prefix}: sent {message.identifier} to {topic!r}", file=sys.stderr)
                return EXIT_OK
            reply = await sender.receive()
    except TimeoutError:
        what = "a reply" if wait_reply else "the broker to accept the message"
        print(f"{prefix}: no answer within {timeout} s: waited for {what} on {topic!r}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await sender.stop(2.0)
    status = int(reply.status)
    print(json.dumps({"status": status, "content": reply.content}, default=str), flush=True)
    return EXIT_OK if 200 <= status < 300 else EXIT_FAILURE


def docs_command(path: str, which: str | None) -> int:
    """Print the OpenAPI (``which="openapi"``), AsyncAPI (``"asyncapi"``) or both documents as JSON."""
    prefix = "minos-networks docs"
    config = load_config(path, prefix, check=unknown_keys)
    if config is None:
        return EXIT_CONFIG
    from ..specs import AsyncAPIService, OpenAPIService

    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "openapi": lambda: OpenAPIService(config).spec,
        "asyncapi": lambda: AsyncAPIService(config).spec,
    }
    try:
        documents = {name: build() for name, build in builders.items() if which in (None, name)}
    except Exception as error:  # a service that does not import, or cannot be collected
        _print_problems(prefix, path, [ConfigError(f"{type(error).__name__}: {error}", key="services")])
        return EXIT_CONFIG
    document = documents[which] if which is not None else documents
    print(json.dumps(document, indent=2, default=str), flush=True)
    return EXIT_OK


def describe_error(error: BaseException) -> str:
    """``error`` on one line: our errors by their message (it says what to do), others with their type
    too; and the direct cause, when there is one."""
    text = str(error) if isinstance(error, MinosException) else f"{type(error).__name__}: {error}"
    if error.__cause__ is not None:
        text += f" (caused by {describe_error(error.__cause__)})"
    return " ".join(text.split())


def _print_problems(prefix: str, path: str, problems: list[ConfigError]) -> None:
    for problem in problems:
        # The line names the file and the key already: "Config key 'k' in FILE: " would say them twice.
        text = str(problem).removeprefix(f"Config key {problem.key!r} in {problem.source}: ")
        print(f"{prefix}: {path}: {problem.key or '(file)'}: {text}", file=sys.stderr)
    print(
        f"{prefix}: {path} has {len(problems)} configuration problem(s); nothing was started", file=sys.stderr
    )


def _write_stderr(text: str) -> None:
    # os.write, not print: a signal handler may interrupt a print in progress on the same stream.
    os.write(2, (text + "\n").encode())
