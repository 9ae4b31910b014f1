"""Fixtures of the HTTP tests: a real HttpPort on 127.0.0.1, a real aiohttp client, and a gate for handlers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from minos.networks import RestHttpRouter
from minos.networks.http import AioHttpConnector, HttpPort

TIMEOUT = 10.0  # seconds any single wait of these tests may take

Serve = Callable[..., Awaitable[HttpPort]]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session, closed after the test."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        yield session


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts an HttpPort serving the given services on a free port; every port is stopped after the test.

    ``await serve(Service, concurrency=2, ...)`` passes the keywords to ``AioHttpConnector``;
    ``connector_class=`` picks a subclass of it.
    """
    ports: list[HttpPort] = []

    async def start(
        *services: object, connector_class: type[AioHttpConnector] = AioHttpConnector, **settings: Any
    ) -> HttpPort:
        connector = connector_class(RestHttpRouter(services), host="127.0.0.1", port=0, **settings)
        port = HttpPort(connector, name=f"http-test-{len(ports)}")
        ports.append(port)
        await port.start()
        return port

    yield start
    for port in reversed(ports):
        await port.stop()


class Gate:
    """Handlers, running in the HTTP actor's loop, wait here until the test opens the gate.

    It counts the handlers inside (``running``, and the most there ever were at once), and tells the test,
    in the test's own loop, each time one enters. Create it in the test's loop.
    """

    def __init__(self) -> None:
        self._test_loop = asyncio.get_running_loop()
        self._arrivals: asyncio.Queue[None] = asyncio.Queue()
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.entered = 0
        self.running = 0
        self.most_running = 0

    async def wait(self) -> None:
        """Called by a handler: wait until the gate is open."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] | None = None
        with self._lock:
            self.entered += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            if not self._open:
                future = loop.create_future()
                self._waiters.append((loop, future))
        self._test_loop.call_soon_threadsafe(self._arrivals.put_nowait, None)
        try:
            if future is not None:
                await future
        finally:
            with self._lock:
                self.running -= 1

    def open(self) -> None:
        """Let every handler waiting, and every one to come, through."""
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait_entered(self, count: int) -> None:
        """Wait until ``count`` more handlers have entered."""
        for _ in range(count):
            await asyncio.wait_for(self._arrivals.get(), TIMEOUT)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@pytest.fixture
async def gate() -> Gate:
    return Gate()
