"""A small Minos discovery service on 127.0.0.1, served by aiohttp, that tests start, stop and restart."""

import asyncio

import pytest
from aiohttp import web


class DiscoveryServer:
    """The Minos discovery API (``POST``/``DELETE /microservices/{name}``), recording what it is told.

    ``failures`` makes the next requests answer with those statuses instead (e.g. ``[503, 503]``).
    """

    def __init__(self) -> None:
        self.services: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.failures: list[int] = []
        self.port: int | None = None
        self.registered = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append((request.method, name))
        if self.failures:
            return web.json_response({"error": "try later"}, status=self.failures.pop(0))
        if request.method == "POST":
            self.services[name] = await request.json()
            self.registered.set()
            return web.json_response({"name": name}, status=201)
        if self.services.pop(name, None) is None:
            return web.json_response({"error": f"no service {name}"}, status=404)
        return web.Response(status=204)

    async def start(self) -> int:
        """Starts serving, on the port of the last run if there was one; returns the port."""
        app = web.Application()
        app.router.add_route("POST", "/microservices/{name}", self._handle)
        app.router.add_route("DELETE", "/microservices/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port or 0).start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        """Stops serving: connections to the port are refused from now on."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def discovery():
    server = DiscoveryServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def discovery_down():
    """A discovery server that is not running (yet): its port refuses connections until ``start()``."""
    server = DiscoveryServer()
    await server.start()
    await server.stop()
    yield server
    await server.stop()
