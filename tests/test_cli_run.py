"""The service commands (run, check-config, publish, docs, --version), run as real processes.

Every wait is bounded and rests on a handshake: a process's ready line, or its exit.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import version

import aiohttp
import pytest

from .conftest import CliProcess

START_TIMEOUT = 20.0  # seconds for `run` to print its ready line
STOP_TIMEOUT = 15.0  # seconds for `run` to exit after SIGTERM (its stop bound here is 8 s)
COMMAND_TIMEOUT = 30.0  # seconds for a one-shot command

SERVICE_MODULE = """
import asyncio

from minos.networks import Request, Response, ResponseException, enroute


class EchoService:
    @enroute.rest.query("/echo/{word}", method="GET")
    async def echo(self, request: Request) -> Response:
        return Response({"word": (await request.url_params())["word"]})

    @enroute.broker.query("echo.ask")
    async def ask(self, request: Request) -> Response:
        return Response({"echo": await request.content()})

    @enroute.broker.query("echo.missing")
    async def missing(self, request: Request) -> Response:
        raise ResponseException("no such echo", status=404)

    @enroute.broker.command("echo.hang")
    async def hang(self, request: Request) -> None:
        print("hang handler started", flush=True)
        await asyncio.Event().wait()  # until the stop cancels it

    @enroute.periodic.event("0 0 1 1 *")
    async def yearly(self, request: Request) -> None:
        return None
"""

BAD_CRON_MODULE = """
from minos.networks import enroute


class BadCron:
    @enroute.periodic.event("61 * * * *")
    async def tick(self, request):
        return None
"""

CONFIG = """
name: echo
interfaces:
  broker:
    endpoint: inproc://echo
    embedded: true
    bind: ["{endpoint}"]
    heartbeat_interval: 0.2
    close_timeout: 1
  http:
    port: 0
    shutdown_timeout: 1
  periodic:
    stop_timeout: 1
services:
  - cli_run_service.EchoService
"""


@pytest.fixture
def workdir(short_dir):
    """A directory for the service module, its config and its broker socket (short enough for ipc)."""
    path = short_dir
    (path / "cli_run_service.py").write_text(SERVICE_MODULE)
    (path / "cli_run_bad_cron.py").write_text(BAD_CRON_MODULE)
    config = path / "service.yml"
    config.write_text(CONFIG.format(endpoint=f"ipc://{path / 'broker.sock'}"))
    return path


def environment(workdir, **overrides):
    """The child's environment: the service module importable, no stray MINOS_ overrides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINOS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


def command(workdir, *args, **overrides):
    """Run ``minos-networks ARGS`` to its end (bounded) and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "minos.networks", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=environment(workdir, **overrides),
    )


class Running(CliProcess):
    """A `run` process on ``config``, in ``workdir``."""

    def __init__(self, workdir, config):
        super().__init__(
            ["run", config],
            env=environment(workdir),
            stderr_path=workdir / "run.stderr",
            stop_timeout=STOP_TIMEOUT,
        )


@pytest.fixture
def start_service(workdir):
    """``start_service()``: `run` on the test's config, ready; reaped at teardown whatever happened."""
    started = []

    def start():
        running = Running(workdir, workdir / "service.yml")
        started.append(running)
        ready = running.wait_line("minos-networks run: echo ready", START_TIMEOUT)
        return running, ready

    try:
        yield start
    finally:
        for running in started:
            running.reap()


async def get_json(url):
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.json()


def test_run_serves_http_and_broker_requests_then_stops_on_sigterm_with_exit_zero(workdir, start_service):
    running, ready = start_service()
    words = dict(word.split("=", 1) for word in ready.split()[4:])
    assert words["broker"] == f"inproc://echo,ipc://{workdir / 'broker.sock'}"
    assert words["periodic"] == "1"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", words["http"]), ready

    assert asyncio.run(get_json(f"{words['http']}/echo/hello")) == (200, {"word": "hello"})

    reply = command(workdir, "publish", workdir / "service.yml", "echo.ask", '{"n": 1}', "--wait-reply")
    assert reply.returncode == 0, reply.stderr
    assert json.loads(reply.stdout) == {"status": 200, "content": {"echo": {"n": 1}}}
    refused = command(workdir, "publish", workdir / "service.yml", "echo.missing", "1", "--wait-reply")
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout) == {"status": 404, "content": "no such echo"}

    started = time.monotonic()
    running.popen.send_signal(signal.SIGTERM)
    assert running.popen.wait(STOP_TIMEOUT) == 0, running.diagnostics()
    assert time.monotonic() - started < STOP_TIMEOUT
    running.wait_line("minos-networks run: echo stopped", STOP_TIMEOUT)


def test_a_second_signal_during_the_stop_exits_at_once_with_128_plus_its_number(workdir, start_service):
    running, _ = start_service()
    sent = command(workdir, "publish", workdir / "service.yml", "echo.hang", "null")
    assert sent.returncode == 0, sent.stderr
    running.wait_line("hang handler started", START_TIMEOUT)
    running.popen.send_signal(signal.SIGTERM)
    running.wait_line("minos-networks run: echo stopping", STOP_TIMEOUT)  # draining the hung handler
    started = time.monotonic()
    running.popen.send_signal(signal.SIGTERM)
    assert running.popen.wait(STOP_TIMEOUT) == 128 + signal.SIGTERM, running.diagnostics()
    assert time.monotonic() - started < 1.0
    assert "second signal (SIGTERM)" in running.stderr_path.read_text()


BAD_CONFIGS = {
    "unknown transport": ("interfaces: {broker: {transport: kafka}}", "interfaces.broker.transport"),
    "wrong type": ("interfaces: {http: {port: eighty}}", "interfaces.http.port"),
    "bad endpoint": ("interfaces: {broker: {endpoint: 'udp://127.0.0.1:1'}}", "interfaces.broker.endpoint"),
    "missing service class": ("services: [cli_run_service.Missing]", "services[0]"),
    "bad cron": ("services: [cli_run_bad_cron.BadCron]", "services[0]"),
    "bad discovery client": ("discovery: {client: nowhere.Client}", "discovery.client"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_rejects_a_bad_config_with_exit_three_naming_the_key(workdir, case):
    body, key = BAD_CONFIGS[case]
    config = workdir / "bad.yml"
    config.write_text(f"name: bad\n{body}\n")
    result = command(workdir, "check-config", config)
    assert result.returncode == 3, result
    assert f"{config}: {key}: " in result.stderr
    if case == "bad cron":
        assert "invalid crontab pattern '61 * * * *'" in result.stderr


def test_run_exits_three_on_a_bad_config_before_starting_anything(workdir):
    config = workdir / "bad.yml"
    config.write_text("name: bad\ninterfaces: {broker: {transport: kafka}}\n")
    result = command(workdir, "run", config)
    assert result.returncode == 3
    assert "interfaces.broker.transport" in result.stderr
    assert "ready" not in result.stdout


def test_check_config_prints_the_effective_configuration_after_environment_overrides(workdir):
    result = command(
        workdir,
        "check-config",
        workdir / "service.yml",
        "--format",
        "json",
        MINOS_INTERFACES__HTTP__PORT="8123",
    )
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["interfaces"]["http"] == {"port": 8123, "shutdown_timeout": 1}
    assert effective["services"] == ["cli_run_service.EchoService"]


def test_docs_prints_the_openapi_document_with_the_services_paths(workdir):
    result = command(workdir, "docs", workdir / "service.yml", "--openapi")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["openapi"].startswith("3.1")
    assert "get" in document["paths"]["/echo/{word}"]


def test_version_prints_the_installed_distribution_version(workdir):
    result = command(workdir, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"minos-networks {version('minos-networks')}"
