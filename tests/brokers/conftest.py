"""Fixtures for the broker tests: a service config on each transport, and its embedded broker."""

import dataclasses
from uuid import uuid4

import pytest

from minos.common import Config
from minos.networks.brokers import BrokerPort
from minos.networks.transports import NatsSettings


def _service_config(
    transport: str, name: str | None = None, *, nats: NatsSettings | None = None, **broker: object
) -> Config:
    """A config on the in-memory twin, an embedded ZeroMQ broker or NATS, unique per call; ``broker`` adds keys."""
    name = name or f"svc{uuid4().hex[:8]}"
    if transport == "memory":
        where: dict[str, object] = {"transport": "memory", "endpoint": f"memory-{name}"}
    elif transport == "nats":
        assert nats is not None, "a NATS config needs the nats_settings fixture's settings"
        where = {"transport": "nats", "nats": _nats_keys(nats)}
    else:
        where = {"endpoint": f"inproc://{name}", "heartbeat_interval": 0.2}
    return Config({"name": name, "interfaces": {"broker": {**where, "close_timeout": 2.0, **broker}}})


def _nats_keys(settings: NatsSettings) -> dict[str, object]:
    keys = dataclasses.asdict(settings)
    keys["servers"] = list(settings.servers)
    del keys["max_messages"]  # interfaces.broker.max_messages
    return keys


@pytest.fixture
def make_config(request):
    """Builds service configs: ``make_config("zmq" | "memory" | "nats", name=None, **broker_keys)``.

    NATS configs share one stream per test (``nats_settings``, deleted afterwards).
    """

    def make(transport: str, name: str | None = None, **broker: object) -> Config:
        nats = request.getfixturevalue("nats_settings") if transport == "nats" else None
        return _service_config(transport, name, nats=nats, **broker)

    return make


@pytest.fixture(params=["memory", "zmq", "nats"])
def config(request, make_config):
    """A service config on the in-memory twin, an embedded ZeroMQ broker and NATS JetStream, in turn."""
    return make_config(request.param)


@pytest.fixture
async def broker(config):
    """The embedded broker the config names (nothing to run for the in-memory twin)."""
    port = BrokerPort.broker_only(config)
    await port.start()
    yield port
    await port.stop()
