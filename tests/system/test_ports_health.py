"""The broker and HTTP ports report their health at /system/health while they run."""

import asyncio
import logging
from uuid import uuid4

from minos.common import Config
from minos.networks import (
    AioHttpConnector,
    BrokerPort,
    HealthRegistry,
    HttpAdapter,
    HttpPort,
    InMemoryRequest,
    Request,
    SystemService,
    enroute,
)
from minos.networks.system import ServiceRunner


class Jobs:
    @enroute.broker.command("jobs.run")
    async def run(self, request: Request) -> None:
        return None


async def test_a_running_broker_port_is_healthy_and_gone_from_the_report_once_stopped():
    name = f"jobs{uuid4().hex[:6]}"
    config = Config(
        {"name": name, "interfaces": {"broker": {"endpoint": f"inproc://{name}"}}, "services": [Jobs]}
    )
    registry = HealthRegistry()
    port = BrokerPort.from_config(config, health=registry)
    await port.start()
    try:
        report = registry.report()
        assert report[port.name].healthy
        assert report[port.name].detail == "1 dispatchers connected"
        response = await SystemService(registry=registry).check_health(InMemoryRequest())
        assert response.status == 200
    finally:
        await port.stop()
    assert port.name not in registry.report()
    assert port.health() == (False, "stopped")


async def test_a_dispatcher_that_lost_its_broker_makes_the_service_unhealthy():
    name = f"jobs{uuid4().hex[:6]}"
    broker = Config(
        {
            "name": f"{name}-broker",
            "interfaces": {"broker": {"endpoint": f"inproc://{name}", "heartbeat_interval": 0.05}},
        }
    )
    service = Config(
        {
            "name": name,
            "interfaces": {
                "broker": {"endpoint": f"inproc://{name}", "embedded": False, "heartbeat_interval": 0.05}
            },
            "services": [Jobs],
        }
    )
    registry = HealthRegistry()
    embedded = BrokerPort.broker_only(broker)
    await embedded.start()
    port = BrokerPort.from_config(service, health=registry)
    await port.start()
    try:
        assert port.health()[0]
        lost = _event_on_log("minos.networks.transports.zmq", "lost the broker")
        await embedded.stop()  # the broker goes away; the dispatcher notices within 3 heartbeats
        await asyncio.wait_for(lost.wait(), 5)
        healthy, detail = port.health()
        assert not healthy
        assert detail.startswith("not connected to the broker:")
        response = await SystemService(registry=registry).check_health(InMemoryRequest())
        assert response.status == 503
        assert port.name in (await response.content())["failing"]
    finally:
        await port.stop()
        await embedded.stop()


def _event_on_log(logger_name: str, text: str) -> asyncio.Event:
    """An event set (in this loop) when ``logger_name`` logs a record containing ``text``."""
    event, loop = asyncio.Event(), asyncio.get_running_loop()
    logger = logging.getLogger(logger_name)

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                logger.removeHandler(self)
                loop.call_soon_threadsafe(event.set)

    logger.addHandler(Handler())
    return event


async def test_ports_given_a_registry_register_there_and_not_in_another_one():
    registry, other = HealthRegistry(), HealthRegistry()
    connector = AioHttpConnector(HttpAdapter([]), host="127.0.0.1", port=0)
    http = HttpPort(connector, name=f"http{uuid4().hex[:6]}", health=registry)
    broker = BrokerPort(
        None, connect=_unused, group="nobody", name=f"broker{uuid4().hex[:6]}", health=registry
    )
    await http.start()
    await broker.start()
    try:
        assert set(registry.checks()) == {http.name, broker.name}
        assert other.checks() == {}
        response = await SystemService(registry=registry).check_health(InMemoryRequest())
        assert set((await response.content())["components"]) == {http.name, broker.name}
        alone = await SystemService().check_health(InMemoryRequest())
        assert (alone.status, (await alone.content())["components"]) == (200, {})
    finally:
        await broker.stop()
        await http.stop()
    assert registry.checks() == {}


def _unused(**_: object) -> None:
    raise AssertionError("a port without dispatchers connects to nothing")


class Everything:
    @enroute.broker.command("everything.run")
    async def run(self, request: Request) -> None:
        return None

    @enroute.periodic.event("@daily")
    async def daily(self, request: Request) -> None:
        return None


async def test_a_runner_hands_its_one_registry_to_every_part_and_to_the_listed_system_service():
    name = f"all{uuid4().hex[:6]}"
    config = Config(
        {
            "name": name,
            "interfaces": {
                "broker": {"endpoint": f"inproc://{name}"},
                "http": {"host": "127.0.0.1", "port": 0},
                "periodic": {},
            },
            "discovery": {"client": "memory", "address": "127.0.0.1"},
            "services": [Everything, SystemService],
        }
    )
    runner = ServiceRunner.from_config(config)
    async with runner:
        assert runner.broker is not None
        assert runner.http is not None
        parts = {runner.broker.name, runner.http.name, "periodic", "discovery"}
        assert set(runner.health.checks()) == parts
        routes = {decorator.url: action for decorator, action in runner.http.connector.adapter.routes.items()}
        response = await routes["/system/health"](InMemoryRequest())
        assert response.status == 200
        assert set((await response.content())["components"]) == parts
    assert runner.health.checks() == {}
