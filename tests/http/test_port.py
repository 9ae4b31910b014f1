"""HttpPort: built from Config, started and stopped from asyncio, limits, graceful stop, supervision."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from pykka.messages import ProxyCall

from minos.common import Config, ConfigError
from minos.networks import (
    BrokerRouter,
    MinosRedefinedEnrouteDecoratorException,
    Response,
    RestHttpRouter,
    enroute,
)
from minos.networks.actors import EscalationError, wait_started
from minos.networks.http import AioHttpConnector, HttpAdapter, HttpPort, HttpRequest

from .conftest import TIMEOUT, Gate


async def test_the_seeds_example_serves_the_configured_services(tmp_path, make_module, client):
    module = make_module(
        """
        from minos.networks import Request, Response, enroute

        class UserService:
            @enroute.rest.query("/users/{user_id}", method="GET")
            async def get_user(self, request: Request) -> Response:
                params = await request.params()
                user_id = params["user_id"]
                # Fetch user logic
                return Response({"id": user_id, "name": "John Doe"})
        """
    )
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        f"name: users\ninterfaces:\n  http:\n    host: 127.0.0.1\n    port: 0\nservices:\n  - {module}.UserService\n"
    )

    # The seed's example, as written.
    from minos.common import Config as SeedConfig
    from minos.networks import HttpPort as SeedHttpPort

    config = SeedConfig(str(config_file))
    http_port = SeedHttpPort.from_config(config)
    await http_port.start()

    try:
        assert http_port.running
        assert http_port.port is not None
        assert http_port.port > 0
        assert str(http_port.url) == f"http://127.0.0.1:{http_port.port}"
        async with client.get(f"{http_port.url}/users/42") as response:
            assert response.status == 200
            assert await response.json() == {"id": "42", "name": "John Doe"}
    finally:
        await http_port.stop()
    assert not http_port.running


def test_from_config_reads_interfaces_http_with_defaults():
    service = _service_with("/a")
    port = HttpPort.from_config(Config({"name": "orders", "services": [service]}))
    connector = port.connector
    assert isinstance(connector, AioHttpConnector)
    assert (connector.host, connector.port, connector.concurrency, connector.backlog) == (
        "127.0.0.1",
        8080,
        100,
        1000,
    )
    assert (connector.max_body_size, connector.shutdown_timeout) == (1024 * 1024, 10.0)
    assert port.name == "orders-http-port"

    settings = {
        "host": "0.0.0.0",
        "port": 9000,
        "concurrency": 3,
        "backlog": 0,
        "max_body_size": 10,
        "shutdown_timeout": 1,
    }
    connector = AioHttpConnector.from_config(
        Config({"name": "orders", "services": [service], "interfaces": {"http": settings}})
    )
    assert (connector.host, connector.port, connector.concurrency, connector.backlog) == (
        "0.0.0.0",
        9000,
        3,
        0,
    )
    assert (connector.max_body_size, connector.shutdown_timeout) == (10, 1.0)
    assert [decorator.url for decorator in connector.adapter.routes] == ["/a"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"max_body_size": -1}, "max_body_size must be at least 1"),
        ({"port": 70000}, "port must be 0 (any free port) to 65535"),
        ({"port": "eighty"}, "'interfaces.http.port'"),
    ],
)
def test_a_wrong_http_setting_is_a_config_error_naming_it(settings, message):
    config = Config({"name": "orders", "interfaces": {"http": settings}})
    with pytest.raises(ConfigError, match=r"interfaces\.http") as caught:
        HttpPort.from_config(config)
    assert message in str(caught.value)


def test_the_adapter_serves_only_http_routers_and_refuses_a_route_served_twice():
    first, second = _service_with("/same"), _service_with("/same")
    config = Config({"name": "orders", "services": [first], "routers": [BrokerRouter, RestHttpRouter]})
    adapter = HttpAdapter.from_config(config)
    assert [type(router) for router in adapter.routers] == [RestHttpRouter]
    assert [(decorator.url, decorator.method) for decorator in adapter.routes] == [("/same", "GET")]

    clashing = HttpAdapter([RestHttpRouter([first]), RestHttpRouter([second])])
    with pytest.raises(MinosRedefinedEnrouteDecoratorException, match="GET /same is served by both"):
        _ = clashing.routes


def _service_with(path: str) -> type:
    class Service:
        @enroute.rest.query(path, method="GET")
        async def handle(self, request: HttpRequest) -> Response:
            return Response(path)

    return Service


def gated_service(gate: Gate) -> type:
    class Gated:
        @enroute.rest.query("/wait", method="GET")
        async def wait(self, request: HttpRequest) -> Response:
            await gate.wait()
            return Response({"done": True})

    return Gated


async def test_at_most_concurrency_requests_run_more_wait_and_beyond_the_backlog_get_503(serve, client, gate):
    port = await serve(gated_service(gate), concurrency=2, backlog=1)
    url = f"{port.url}/wait"

    async def get() -> tuple[int, dict[str, object], str | None]:
        async with client.get(url) as response:
            return response.status, await response.json(), response.headers.get("Retry-After")

    running = [asyncio.create_task(get()) for _ in range(2)]
    await gate.wait_entered(2)
    # Two run and hold their slots: of three more, one waits for a slot and two find no room at all.
    more = {asyncio.create_task(get()) for _ in range(3)}
    refused: set[asyncio.Task[tuple[int, dict[str, object], str | None]]] = set()
    async with asyncio.timeout(TIMEOUT):
        while len(refused) < 2:
            done, _ = await asyncio.wait(more - refused, return_when=asyncio.FIRST_COMPLETED)
            refused |= done
    for task in refused:
        status, body, retry_after = task.result()
        assert (status, retry_after) == (503, "1")
        assert body["status"] == 503
        assert "retry later" in str(body["message"])
    (waiting,) = more - refused
    assert not waiting.done()
    assert gate.entered == 2

    gate.open()
    results = await asyncio.wait_for(asyncio.gather(*running, waiting), TIMEOUT)
    assert [status for status, _, _ in results] == [200, 200, 200]
    assert gate.entered == 3
    assert gate.most_running == 2


class ShutdownObserved(AioHttpConnector):
    """Tells the test's loop when aiohttp begins its shutdown (its listening socket already closed)."""

    shutting_down: asyncio.Event
    test_loop: asyncio.AbstractEventLoop

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self.test_loop.call_soon_threadsafe(self.shutting_down.set)


async def test_stop_lets_a_request_in_flight_finish_and_refuses_new_connections(serve, client, gate):
    ShutdownObserved.shutting_down, ShutdownObserved.test_loop = asyncio.Event(), asyncio.get_running_loop()
    port = await serve(gated_service(gate), connector_class=ShutdownObserved, shutdown_timeout=TIMEOUT)
    in_flight = asyncio.create_task(client.get(f"{port.url}/wait"))
    await gate.wait_entered(1)

    stopping = asyncio.create_task(port.stop())
    await asyncio.wait_for(ShutdownObserved.shutting_down.wait(), TIMEOUT)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as late_client:
        with pytest.raises(aiohttp.ClientConnectorError):
            await late_client.get(f"{port.url}/wait")
    assert not stopping.done()
    assert not in_flight.done()

    gate.open()
    response = await asyncio.wait_for(in_flight, TIMEOUT)
    async with response:
        assert response.status == 200
        assert await response.json() == {"done": True}
    await asyncio.wait_for(stopping, TIMEOUT)
    assert not port.running


async def test_a_request_still_running_after_the_shutdown_timeout_is_cancelled_and_stop_ends(
    serve, client, gate
):
    port = await serve(gated_service(gate), shutdown_timeout=0.2)
    in_flight = asyncio.create_task(client.get(f"{port.url}/wait"))
    await gate.wait_entered(1)

    started = time.monotonic()
    await asyncio.wait_for(port.stop(), TIMEOUT)
    assert time.monotonic() - started < 3.0
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(in_flight, TIMEOUT)
    assert gate.running == 0  # the handler was cancelled


async def test_start_and_stop_are_idempotent_and_the_port_serves_as_a_context_manager(client):
    service = _service_with("/ping")
    async with HttpPort(AioHttpConnector(RestHttpRouter([service]), port=0), name="http-ctx") as port:
        await port.start()
        async with client.get(f"{port.url}/ping") as response:
            assert await response.json() == "/ping"
    await port.stop()
    assert not port.running


async def test_an_address_in_use_fails_start_with_the_os_error_itself(serve):
    service = _service_with("/ping")
    first = await serve(service)
    assert first.port is not None
    second = HttpPort(AioHttpConnector(RestHttpRouter([service]), port=first.port), name="http-clash")
    with pytest.raises(OSError, match="address already in use") as caught:
        await second.start()
    assert not isinstance(caught.value, EscalationError)
    assert not second.running
    with pytest.raises(RuntimeError, match="start it before asking its url"):
        _ = HttpPort(AioHttpConnector(RestHttpRouter([service]), port=0)).url


async def test_a_crashed_server_actor_is_restarted_on_the_port_it_had(serve, client):
    port = await serve(_service_with("/ping"))
    bound = port.port
    system = port.service._system
    assert system is not None
    name = f"{port.name}-server"
    crashed = system.directory.get(name)
    crashed.tell(ProxyCall(attr_path=("no_such_method",), args=(), kwargs={}))
    restarted = await asyncio.to_thread(system.directory.wait_ref, name, other_than=crashed, timeout=TIMEOUT)
    await asyncio.to_thread(wait_started, restarted, TIMEOUT)  # its server listens again

    assert port.port == bound
    async with client.get(f"{port.url}/ping") as response:
        assert response.status == 200


async def test_configured_middleware_wraps_the_rest_handlers(client):
    async def tag(request, inner):
        response = await inner(request)
        return Response({"inner": await response.content(), "request": type(request).__name__})

    config = Config(
        {
            "name": "orders",
            "services": [_service_with("/tagged")],
            "middleware": [tag],
            "interfaces": {"http": {"port": 0}},
        }
    )
    async with HttpPort.from_config(config) as port, client.get(f"{port.url}/tagged") as response:
        assert await response.json() == {"inner": "/tagged", "request": "HttpRequest"}
