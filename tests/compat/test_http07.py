"""Items 10 and 15 of issue 17, over a real aiohttp server and a real HTTP client: the 0.7 service's routes,
the system and spec routes, what a handler returning None answers, and the adapter and connector types."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from minos.common import Config
from minos.networks import (
    AsyncAPIService,
    EnrouteCollector,
    HttpAdapter,
    HttpConnector,
    HttpPort,
    MinosRedefinedEnrouteDecoratorException,
    OpenAPIService,
    RestHttpRouter,
    RestQueryEnrouteDecorator,
    SystemService,
)

TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture
async def orders(service07) -> AsyncIterator[tuple[HttpPort, aiohttp.ClientSession]]:
    """The 0.7 service's port, with the system and spec services beside it, and a client."""
    config = Config(
        {
            "name": "orders",
            "interfaces": {"http": {"host": "127.0.0.1", "port": 0}},
            "services": [
                service07.OrderCommandService,
                service07.OrderQueryService,
                SystemService,
                OpenAPIService,
                AsyncAPIService,
            ],
        }
    )
    async with HttpPort.from_config(config) as port, aiohttp.ClientSession(timeout=TIMEOUT) as client:
        yield port, client


async def test_the_0_7_service_serves_its_routes_over_http(orders, service07):
    port, client = orders
    async with client.post(f"{port.url}/orders", json={"items": ["book"]}) as response:
        assert response.status == 200
        assert await response.json() == {"id": "1", "items": ["book"], "user": None}
    async with client.get(f"{port.url}/orders") as response:  # the route declared with url=
        assert await response.json() == [{"id": "1", "items": ["book"], "user": None}]
    async with client.get(f"{port.url}/orders/7") as response:
        assert response.status == 404
        assert await response.json() == {"status": 404, "message": "order 7 does not exist"}
    async with client.post(f"{port.url}/orders", json={"items": []}) as response:  # its checker says no
        assert response.status == 400
    assert list(service07.ORDERS) == ["1"]


async def test_item_15_a_handler_returning_none_answers_200_with_an_empty_body(orders, service07):
    port, client = orders
    service07.ORDERS["1"] = {"id": "1", "items": ["book"], "user": None}
    async with client.delete(f"{port.url}/orders/1") as response:
        assert response.status == 200
        assert await response.read() == b""
    assert service07.ORDERS == {}


async def test_item_10_health_and_the_specs_are_get_queries(orders):
    port, client = orders
    for service, path in (
        (SystemService, "/system/health"),
        (OpenAPIService, "/spec/openapi"),
        (AsyncAPIService, "/spec/asyncapi"),
    ):
        routes = EnrouteCollector(service).get_rest_command_query()
        assert set().union(*routes.values()) == {RestQueryEnrouteDecorator(path, "GET")}
        async with client.get(f"{port.url}{path}") as response:
            assert response.status == 200, path
    async with client.get(f"{port.url}/spec/openapi") as response:
        assert "/orders/{order_id}" in (await response.json())["paths"]


def test_item_10_an_adapter_given_one_router_twice_refuses_the_routes(service07):
    router = RestHttpRouter([service07.OrderQueryService])
    with pytest.raises(MinosRedefinedEnrouteDecoratorException, match="list each router once"):
        _ = HttpAdapter([router, router]).routes


async def test_item_10_the_connector_is_generic_in_its_raw_request_and_response_as_in_0_7(service07):
    class FakeHttpConnector(HttpConnector[Any, Any]):
        """A connector of 0.7's tests: it serves nothing, it only records being started."""

        started = False

        async def start(self) -> None:
            self.started = True

        async def stop(self) -> None:
            self.started = False

    connector = FakeHttpConnector(RestHttpRouter([service07.OrderQueryService]), port=0)
    async with connector:
        assert connector.started
    assert not connector.started
