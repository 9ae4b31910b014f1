"""End to end: the system and spec services listed in ``services:``, served by a ServiceRunner's HttpPort."""

from uuid import uuid4

import aiohttp
import pytest
from openapi_spec_validator import validate

from minos.common import Config
from minos.networks import enroute
from minos.networks.specs import AsyncAPIService, OpenAPIService
from minos.networks.system import ServiceRunner, SystemService

TIMEOUT = 10.0


class OrderService:
    @enroute.rest.query("/orders/{order_id}", method="GET")
    async def get_order(self, request): ...

    @enroute.broker.command("order.create")
    async def create_order(self, request): ...


class Flaky:
    name = "flaky-component"

    def __init__(self) -> None:
        self.healthy = True

    def health(self):
        return self.healthy, "up" if self.healthy else "lost its connection"


@pytest.fixture
async def served():
    config = Config(
        {
            "name": "orders",
            "interfaces": {
                "http": {"host": "127.0.0.1", "port": 0},
                "broker": {"endpoint": f"inproc://served-{uuid4().hex}"},  # order.create runs a broker port
            },
            "services": [OrderService, SystemService, OpenAPIService, AsyncAPIService],
        }
    )
    runner = ServiceRunner.from_config(config)
    async with runner, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client:
        assert runner.http is not None
        yield runner, client


async def test_health_is_served_at_get_system_health_and_turns_503_when_a_component_fails(served):
    runner, client = served
    port = runner.http
    component = Flaky()
    runner.health.register(component)
    try:
        async with client.get(port.url / "system/health") as response:
            assert response.status == 200
            body = await response.json()
        assert body["status"] == "ok"
        assert body["components"]["flaky-component"] == {"healthy": True, "detail": "up"}
        assert body["components"][port.name] == {"healthy": True, "detail": f"serving on port {port.port}"}

        component.healthy = False
        async with client.get(port.url / "system/health") as response:
            assert response.status == 503
            body = await response.json()
        assert body["failing"] == ["flaky-component"]
    finally:
        runner.health.unregister(component)


async def test_the_specifications_are_served_at_get_spec(served):
    runner, client = served
    port = runner.http
    async with client.get(port.url / "spec/openapi") as response:
        assert response.status == 200
        openapi = await response.json()
    validate(openapi)
    assert set(openapi["paths"]) == {
        "/orders/{order_id}",
        "/spec/asyncapi",
        "/spec/openapi",
        "/system/health",
    }
    async with client.get(port.url / "spec/asyncapi") as response:
        assert response.status == 200
        asyncapi = await response.json()
    assert asyncapi["channels"]["order_create"]["address"] == "order.create"
