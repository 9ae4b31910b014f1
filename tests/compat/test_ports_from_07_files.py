"""HttpPort, BrokerPort and PeriodicPort built straight from 0.7's config files serve real calls.

The files point the broker at Kafka (localhost:9092); each test runs a broker where the 0.7 variables
move that address (MINOS_BROKER_PORT for v1, MINOS_INTERFACES_BROKER_COMMON_PORT for v2).
"""

import asyncio
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from minos.common import Config
from minos.networks import (
    BrokerClient,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPort,
    HttpPort,
    PeriodicPort,
)

HERE = Path(__file__).resolve().parent
WAIT = 10.0

# The variables of each layout that move the HTTP port to a free one and the broker to the test's.
VARIABLES = {
    "config_v1.yml": ("MINOS_REST_PORT", "MINOS_BROKER_HOST", "MINOS_BROKER_PORT"),
    "config_v2.yml": (
        "MINOS_INTERFACES_HTTP_CONNECTOR_PORT",
        "MINOS_INTERFACES_BROKER_COMMON_HOST",
        "MINOS_INTERFACES_BROKER_COMMON_PORT",
    ),
}


@pytest.fixture(autouse=True)
def service_module_on_path(monkeypatch):
    """``config_service`` (named in config_v1.yml and config_v2.yml) imports, as it would beside a 0.7 service."""
    monkeypatch.syspath_prepend(str(HERE))
    yield
    sys.modules.pop("config_service", None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def broker_at():
    """``await broker_at(port)``: a broker listening on tcp://127.0.0.1:PORT, where 0.7 had Kafka."""
    started = []

    async def start(port: int) -> BrokerPort:
        config = Config(
            {
                "name": "kafka-stand-in",
                "interfaces": {"broker": {"endpoint": f"tcp://127.0.0.1:{port}", "embedded": True}},
            },
            environ={},
        )
        broker = BrokerPort.broker_only(config)
        await broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        await broker.stop()


@pytest.mark.parametrize("file", sorted(VARIABLES))
async def test_the_ports_built_from_a_0_7_file_answer_http_broker_and_periodic_calls(
    file, broker_at, monkeypatch
):
    port = free_port()
    await broker_at(port)
    http_variable, host_variable, port_variable = VARIABLES[file]
    monkeypatch.setenv(http_variable, "0")
    monkeypatch.setenv(host_variable, "127.0.0.1")
    monkeypatch.setenv(port_variable, str(port))
    path = HERE / file

    http = HttpPort.from_config(str(path))
    broker = BrokerPort.from_config(path)
    periodic = PeriodicPort.from_config(path)
    ticked = sys.modules["config_service"].TICKED
    await broker.start()
    await http.start()
    await periodic.start()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
            session.get(f"{http.url}/carts/7") as response,
        ):
            assert (response.status, await response.json()) == (200, {"id": "7", "items": []})
        async with BrokerClient.from_config(path) as client:
            await client.send(BrokerMessageV1("GetCart", BrokerMessageV1Payload({"id": 7})))
            reply = await asyncio.wait_for(client.receive(), WAIT)
        assert (reply.ok, reply.content) == (True, {"cart": {"id": 7}})
        assert await asyncio.to_thread(ticked.wait, WAIT)
    finally:
        await periodic.stop()
        await http.stop()
        await broker.stop()
