"""0.7's config files and ``__main__`` run as real processes: ``minos-networks run``, ``check-config``,
``publish``, ``docs`` and ``EntrypointLauncher``, with the service module found beside the config file.

Every wait is bounded and rests on a handshake: a ready line, a registration, or an exit.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ..conftest import CliProcess

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0  # the 0.7 files keep the default drain timeouts
COMMAND_TIMEOUT = 30.0
SCRIPT = str(Path(sys.executable).parent / "minos-networks")  # the console script, not python -m

# The 0.7 variables of each layout that move HTTP to a free port, the broker and discovery to the test's.
VARIABLES = {
    "config_v1.yml": {
        "http": "MINOS_REST_PORT",
        "broker_host": "MINOS_BROKER_HOST",
        "broker_port": "MINOS_BROKER_PORT",
    },
    "config_v2.yml": {
        "http": "MINOS_INTERFACES_HTTP_CONNECTOR_PORT",
        "broker_host": "MINOS_INTERFACES_BROKER_COMMON_HOST",
        "broker_port": "MINOS_INTERFACES_BROKER_COMMON_PORT",
    },
}

MAIN_MODULE = """
from pathlib import Path

from minos.common import EntrypointLauncher

if __name__ == "__main__":
    EntrypointLauncher.from_config(Path(__file__).parent / "config.yml").launch()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(**variables: str) -> dict[str, str]:
    """The child's environment: no MINOS_ variable but ``variables``, and no path to tests/compat."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINOS_")}
    env.pop("PYTHONPATH", None)
    env.update(variables)
    return env


@pytest.fixture
def broker_port(tmp_path):
    """A `minos-networks broker` process on a free tcp port, where the 0.7 files had Kafka."""
    port = free_port()
    broker = CliProcess(
        ["broker", "--bind", f"tcp://127.0.0.1:{port}"],
        env=environment(),
        stderr_path=tmp_path / "broker.stderr",
    )
    try:
        broker.wait_line("minos-networks broker: serving on", START_TIMEOUT)
        yield port
        broker.stop()
    finally:
        broker.reap()


@pytest.fixture
async def discovery():
    """A Minos discovery service stand-in: records each (method, service name, body) it is sent."""
    calls: asyncio.Queue = asyncio.Queue()

    async def microservice(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        calls.put_nowait((request.method, request.match_info["name"], body))
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/microservices/{name}", microservice)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, calls
    finally:
        await runner.cleanup()


def service_variables(file: str, broker_port: int, discovery_port: int) -> dict[str, str]:
    names = VARIABLES[file]
    return {
        names["http"]: "0",
        names["broker_host"]: "127.0.0.1",
        names["broker_port"]: str(broker_port),
        "MINOS_DISCOVERY_HOST": "127.0.0.1",
        "MINOS_DISCOVERY_PORT": str(discovery_port),
    }


async def get(url: str) -> tuple[int, object]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.json()


async def serve_and_check(running: CliProcess, discovery_calls: asyncio.Queue, variables, config: Path, cwd):
    """Wait for ``running``'s ready line, then check HTTP, discovery and a broker reply; SIGTERM; exit 0."""
    ready = await asyncio.to_thread(running.wait_line, "minos-networks run: carts ready", START_TIMEOUT)
    words = dict(word.split("=", 1) for word in ready.split()[4:])
    assert words["broker"] == f"tcp://127.0.0.1:{variables['broker_port']}"
    assert words["periodic"] == "1"
    assert await get(f"{words['http']}/carts/7") == (200, {"id": "7", "items": []})
    method, name, body = await asyncio.wait_for(discovery_calls.get(), START_TIMEOUT)
    assert (method, name, body["port"]) == ("POST", "carts", int(words["http"].rsplit(":", 1)[1]))

    reply = await asyncio.to_thread(
        subprocess.run,
        [SCRIPT, "publish", str(config), "GetCart", '{"id": 7}', "--wait-reply"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=environment(**variables["env"]),
        cwd=cwd,
    )
    assert reply.returncode == 0, reply.stderr
    assert json.loads(reply.stdout) == {"status": 200, "content": {"cart": {"id": 7}}}

    running.popen.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(running.popen.wait, STOP_TIMEOUT) == 0, running.diagnostics()
    assert (await asyncio.wait_for(discovery_calls.get(), STOP_TIMEOUT))[:2] == ("DELETE", "carts")
    stderr = running.stderr()
    assert "a `minos-networks broker --bind tcp://127.0.0.1:" in stderr
    assert "not used by minos.networks (other minos packages own them)" in stderr
    assert stderr.count("not used by minos.networks (other minos packages own them)") == 1


@pytest.mark.parametrize("file", sorted(VARIABLES))
async def test_minos_networks_run_serves_a_0_7_file_with_its_module_beside_it(
    file, broker_port, discovery, tmp_path
):
    discovery_port, calls = discovery
    env = service_variables(file, broker_port, discovery_port)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    running = CliProcess(
        ["run", HERE / file],
        env=environment(**env),
        stderr_path=tmp_path / "run.stderr",
        stop_timeout=STOP_TIMEOUT,
        command=[SCRIPT],
        cwd=elsewhere,
    )
    try:
        variables = {"broker_port": broker_port, "env": env}
        await serve_and_check(running, calls, variables, HERE / file, elsewhere)
    finally:
        running.reap()


async def test_entrypoint_launcher_runs_a_0_7_main_module_as_minos_networks_run_does(
    broker_port, discovery, tmp_path
):
    discovery_port, calls = discovery
    service = tmp_path / "carts"
    service.mkdir()
    shutil.copy(HERE / "config_v1.yml", service / "config.yml")
    shutil.copy(HERE / "config_service.py", service / "config_service.py")
    (service / "main.py").write_text(MAIN_MODULE)
    env = service_variables("config_v1.yml", broker_port, discovery_port)
    running = CliProcess(
        [service / "main.py"],
        env=environment(**env),
        stderr_path=tmp_path / "main.stderr",
        stop_timeout=STOP_TIMEOUT,
        command=[sys.executable],
        cwd=tmp_path,
    )
    try:
        variables = {"broker_port": broker_port, "env": env}
        await serve_and_check(running, calls, variables, service / "config.yml", tmp_path)
    finally:
        running.reap()


@pytest.mark.parametrize("where", ["beside the config file", "in the working directory"])
@pytest.mark.parametrize("action", ["check-config", "docs"])
def test_the_service_commands_import_modules_beside_the_config_and_in_the_working_directory(
    where, action, tmp_path
):
    config_dir, cwd = tmp_path / "config", tmp_path / "cwd"
    config_dir.mkdir()
    cwd.mkdir()
    (config_dir if where == "beside the config file" else cwd).joinpath("cwd_or_beside.py").write_text(
        (HERE / "config_service.py").read_text()
    )
    config = config_dir / "config.yml"
    config.write_text((HERE / "config_v2.yml").read_text().replace("config_service.", "cwd_or_beside."))

    result = subprocess.run(
        [SCRIPT, action, str(config)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=environment(),
        cwd=cwd,
    )

    assert result.returncode == 0, result.stderr
    if action == "docs":
        assert "/carts/{cart_id}" in json.loads(result.stdout)["openapi"]["paths"]
    else:
        assert "a `minos-networks broker --bind tcp://localhost:9092` must listen there" in result.stderr
        assert "cwd_or_beside.CartService" in result.stdout
