"""Fixtures for the broker tests: a service config on each transport, and its embedded broker."""

from uuid import uuid4

import pytest

from minos.common import Config
from minos.networks.brokers import BrokerPort


def _service_config(transport: str, name: str | None = None, **broker: object) -> Config:
    """A config on the in-memory twin or an embedded ZeroMQ broker, unique per call; ``broker`` adds keys."""
    name = name or f"svc{uuid4().hex[:8]}"
    if transport == "memory":
        where: dict[str, object] = {"transport": "memory", "endpoint": f"memory-{name}"}
    else:
        where = {"endpoint": f"inproc://{name}", "heartbeat_interval": 0.2}
    return Config({"name": name, "interfaces": {"broker": {**where, "close_timeout": 2.0, **broker}}})


@pytest.fixture
def make_config():
    """Builds service configs: ``make_config("zmq" | "memory", name=None, **broker_keys)``."""
    return _service_config


@pytest.fixture(params=["memory", "zmq"])
def config(request, make_config):
    """A service config on the in-memory twin and, in a second run, on an embedded ZeroMQ broker."""
    return make_config(request.param)


@pytest.fixture
async def broker(config):
    """The embedded broker the config names (nothing to run for the in-memory twin)."""
    port = BrokerPort.broker_only(config)
    await port.start()
    yield port
    await port.stop()
