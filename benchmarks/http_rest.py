"""The ``http-rest`` scenario: requests/s through HttpPort to a trivial handler, next to a bare aiohttp server.

Path: an aiohttp client in this process, ``CLIENTS`` requests in flight over keep-alive connections ->
``GET /ping`` on an HttpPort in a server process (its aiohttp server in the actor's loop thread, the
request through the error middleware, the concurrency limit, an ``HttpRequest``, the REST route built by
``RestHttpRouter``, the handler returning ``Response({"ok": True})``, and the JSON encoding of it).

Ceiling, measured in the same run the same way: the same client against a bare aiohttp server in a
server process of its own (``web.AppRunner``, no middleware), whose handler answers
``web.json_response({"ok": True})``. Both servers send the same bytes; every response is checked.

Two measures of each:

- ``requests/s``: wall-clock throughput as the client sees it. The client runs in one Python process
  too, so when it is slower than both servers this ratio tends to 1 whatever the servers cost.
- ``requests per server CPU-second``: requests divided by the CPU time the server process spent in the
  timed run (``time.process_time()`` read by the server itself), which shows the server's own cost even
  when the client is the bottleneck.

A server process is ``python -m benchmarks.http_rest serve ours|bare``: it prints ``ready PORT``, answers
``cpu`` with ``cpu SECONDS``, and stops when its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks import Result
from benchmarks.e2e import Worker, WorkerError
from minos.networks import Request, Response, enroute
from minos.networks.actors import run_main

__all__ = ["PingService", "run"]

SCENARIO = "http-rest"
CLIENTS = 32  # requests in flight
BODY = b'{"ok":true}'
STARTUP = 20.0  # seconds a server process may take to print its ready line
PATHS = {
    "rps": f"client -> HttpPort -> handler, {CLIENTS} in flight, keep-alive",
    "cpu": "server CPU: requests per server CPU-second, HttpPort",
}
CEILINGS = {
    "rps": "bare aiohttp server (json_response handler), same client, same run",
    "cpu": "bare aiohttp server: requests per server CPU-second, same run",
}


class PingService:
    """The trivial handler the scenario measures."""

    @enroute.rest.query("/ping", method="GET")
    async def ping(self, request: Request) -> Response:
        return Response({"ok": True})


# The servers ------------------------------------------------------------------------------------------


async def _commands() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            yield line.decode().strip()
    finally:
        transport.close()


async def _serve_commands(port: int) -> None:
    print("ready", port, flush=True)
    async for command in _commands():
        if command == "cpu":
            print("cpu", repr(time.process_time()), flush=True)


async def _serve_ours() -> None:
    from minos.common import Config
    from minos.networks.http import HttpPort

    config = Config({"name": "bench", "services": [PingService], "interfaces": {"http": {"port": 0}}})
    port = HttpPort.from_config(config)
    await port.start()
    try:
        assert port.port is not None
        await _serve_commands(port.port)
    finally:
        await port.stop()


async def _serve_bare() -> None:
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, dumps=_compact_dumps)

    app = web.Application()
    app.router.add_route("GET", "/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await _serve_commands(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def _compact_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# The client -------------------------------------------------------------------------------------------


async def _requests(session: aiohttp.ClientSession, url: str, count: int) -> None:
    remaining = count

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200 or body != BODY:
                    raise WorkerError(f"{SCENARIO}: GET {url} answered {response.status} {body!r}")

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def _measure(
    servers: dict[str, Worker], count: int, repetitions: int
) -> dict[str, tuple[float, float]]:
    """Per server, the best wall-clock seconds of ``count`` requests and the fewest server CPU seconds.

    The servers take turns, repetition by repetition and in alternating order, so that both see the same
    moments of a shared machine.
    """
    best = {kind: (float("inf"), float("inf")) for kind in servers}
    async with contextlib.AsyncExitStack() as stack:
        sessions = {}
        for kind in servers:
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            sessions[kind] = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        urls = {kind: f"http://127.0.0.1:{server.ready_line}/ping" for kind, server in servers.items()}
        for kind in servers:
            await _requests(sessions[kind], urls[kind], min(count, 1000))  # warm up: connections, caches
        order = list(servers)
        for _ in range(repetitions):
            for kind in order:
                cpu_before = float(servers[kind].ask("cpu", "cpu", 10))
                start = time.perf_counter()
                await asyncio.wait_for(_requests(sessions[kind], urls[kind], count), 30 + count / 500)
                seconds = time.perf_counter() - start
                cpu = float(servers[kind].ask("cpu", "cpu", 10)) - cpu_before
                best[kind] = (min(best[kind][0], seconds), min(best[kind][1], cpu))
            order.reverse()
    return best


def run(quick: bool) -> list[Result]:
    """Measure HttpPort and a bare aiohttp server with the same client, taking turns."""
    count, repetitions = (500, 1) if quick else (10_000, 5)
    with contextlib.ExitStack() as stack:
        servers = {}
        for kind in ("bare", "ours"):
            server = Worker(
                f"http-{kind}", [sys.executable, "-m", "benchmarks.http_rest", "serve", kind], ready="ready"
            )
            stack.callback(server.close)
            server.wait_ready(STARTUP)
            servers[kind] = server
        measured = run_main(_measure(servers, count, repetitions))
    (ours_s, ours_cpu), (bare_s, bare_cpu) = measured["ours"], measured["bare"]
    results = []
    for key, ours, bare in (("rps", ours_s, bare_s), ("cpu", ours_cpu, bare_cpu)):
        ours_rate, bare_rate = count / ours, count / bare
        results.append(
            Result(
                scenario=SCENARIO,
                path=PATHS[key],
                messages=count,
                seconds=ours,
                msgs_per_s=ours_rate,
                ceiling_msgs_per_s=bare_rate,
                ratio=ours_rate / bare_rate,
                ceiling=CEILINGS[key],
            )
        )
    return results


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or sys.argv[2:] not in (["ours"], ["bare"]):
        sys.exit("usage: python -m benchmarks.http_rest serve ours|bare")
    run_main(_serve_ours() if sys.argv[2] == "ours" else _serve_bare())
