"""The demo behind ``make run``: two services sharing an embedded broker, exchanging commands, events and replies.

``orders`` embeds the broker (``inproc://``, no server to install) and serves ``POST /orders``: each order
is charged by sending the command ``payment.charge`` to ``payments`` through a BrokerClient from a
BrokerClientPool, answered with the reply, and announced with the MULTICAST event ``order.paid``, which
both services handle. ``payments`` joins the same broker (``embedded: false``), answers the command and
runs a periodic heartbeat every second. Both run under ServiceRunner, the composition root ``run`` uses.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from minos.common import Config

from .actors import run_main
from .brokers import BrokerClientPool
from .enroute import enroute
from .protocol import BrokerMessageV1, BrokerMessageV1Payload, BrokerMessageV1Strategy, Request, Response
from .system import ServiceRunner, tune_gc

__all__ = ["Flow", "main", "run", "services"]

ENDPOINT = "inproc://minos-demo"
ORDERS = 500
"""How many orders the throughput run sends, all at once."""
CONNECTIONS = 100
"""How many HTTP connections the client opens at most, so how many orders are in flight at once."""
CLIENTS = 20
"""How many BrokerClients the orders service's pool lends out at most."""
WAIT = 5.0
"""Seconds the demo waits at most for anything it expects (a reply, the events, the heartbeat)."""


class Flow:
    """What the handlers report to the demo: they run in the ports' own threads, the demo in its loop.

    Args:
        loop: The demo's loop, where lines are printed and counts are awaited.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.verbose = True
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._changed = asyncio.Event()

    def say(self, line: str) -> None:
        """Print ``line`` (from any thread) while the demo walks through one order."""
        if self.verbose:
            self.loop.call_soon_threadsafe(print, line)

    def count(self, what: str) -> None:
        """Count one ``what`` (from any thread) and wake whoever awaits counts."""
        with self._lock:
            self.counts[what] += 1
        self.loop.call_soon_threadsafe(self._changed.set)

    async def reached(self, what: str, at_least: int, timeout: float = WAIT) -> bool:
        """Whether ``what`` is counted ``at_least`` times within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while self.counts[what] < at_least:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True


def services(flow: Flow, pool: Callable[[], BrokerClientPool]) -> tuple[type, type]:
    """The demo's two service classes, reporting to ``flow``; ``orders`` borrows clients from ``pool()``."""

    class OrdersService:
        @enroute.rest.command("/orders", "POST")
        async def create_order(self, request: Request) -> Response:
            order = await request.content()
            flow.say(f"[http]     orders    <- POST /orders {order}")
            charge = BrokerMessageV1(
                "payment.charge", BrokerMessageV1Payload({"order": order["id"], "amount": order["amount"]})
            )
            async with pool().acquire() as client:
                flow.say(f"[broker]   orders    -> command payment.charge {charge.payload.content}")
                await client.send(charge)
                reply = await asyncio.wait_for(client.receive(), WAIT)
                flow.say(
                    f"[broker]   orders    <- reply to payment.charge: status {int(reply.status)}, "
                    f"content {reply.content}, correlated {reply.identifier == charge.identifier}"
                )
                paid = BrokerMessageV1(
                    "order.paid",
                    BrokerMessageV1Payload({"order": order["id"], "receipt": reply.content["receipt"]}),
                    strategy=BrokerMessageV1Strategy.MULTICAST,
                )
                flow.say(f"[broker]   orders    -> MULTICAST event order.paid {paid.payload.content}")
                await client.publisher.send(paid)  # an event: no reply asked for
            correlated = reply.identifier == charge.identifier
            return Response({"order": order["id"], "paid": reply.ok and correlated, **reply.content})

        @enroute.broker.event("order.paid")
        async def on_paid(self, request: Request) -> None:
            flow.say(f"[broker]   orders    <- event order.paid {await request.content()}")
            flow.count("event:orders")

    class PaymentsService:
        @enroute.broker.command("payment.charge")
        async def charge(self, request: Request) -> Response:
            charge = await request.content()
            flow.say(f"[broker]   payments  <- command payment.charge {charge}")
            flow.count("charged")
            return Response({"receipt": f"r-{charge['order']}", "charged": charge["amount"]})

        @enroute.broker.event("order.paid")
        async def on_paid(self, request: Request) -> None:
            flow.say(f"[broker]   payments  <- event order.paid {await request.content()}")
            flow.count("event:payments")

        @enroute.periodic.event("* * * * * *")
        async def heartbeat(self, request: Request) -> None:
            scheduled = (await request.content()).scheduled_at
            flow.loop.call_soon_threadsafe(
                print,
                f"[periodic] payments  heartbeat at {scheduled:%H:%M:%S}, {flow.counts['charged']} charged",
            )
            flow.count("heartbeat")

    return OrdersService, PaymentsService


def configs(orders: type, payments: type) -> tuple[Config, Config]:
    """``orders`` embeds the broker and serves HTTP on a free port; ``payments`` joins the broker."""
    broker = {"endpoint": ENDPOINT, "concurrency": 50, "close_timeout": 2.0}
    return (
        Config(
            {
                "name": "orders",
                "interfaces": {
                    "broker": broker,
                    "http": {"host": "127.0.0.1", "port": 0, "shutdown_timeout": 2.0},
                    "periodic": {"stop_timeout": 2.0},
                },
                "services": [orders],
            }
        ),
        Config(
            {
                "name": "payments",
                "interfaces": {"broker": {**broker, "embedded": False}, "periodic": {"stop_timeout": 2.0}},
                "services": [payments],
            }
        ),
    )


async def main(orders: int = ORDERS) -> bool:
    """Start both services, walk one order through them, then send ``orders`` at once; True when all went right."""
    started = time.perf_counter()
    flow = Flow(asyncio.get_running_loop())
    pools: list[BrokerClientPool] = []
    orders_class, payments_class = services(flow, lambda: pools[0])
    orders_config, payments_config = configs(orders_class, payments_class)
    pools.append(BrokerClientPool.from_config(orders_config, maxsize=CLIENTS))
    ok = True

    def check(what: str, right: bool) -> None:
        nonlocal ok
        ok = ok and right
        if not right:
            print(f"WRONG: {what}")

    async with (  # started in order, the embedding service first; stopped in reverse
        ServiceRunner.from_config(orders_config) as orders_runner,
        pools[0],
        ServiceRunner.from_config(payments_config) as payments_runner,
    ):
        print(f"orders   up: {orders_runner.describe()}")
        print(f"payments up: {payments_runner.describe()}")
        assert orders_runner.http is not None
        await _exercise(flow, f"{orders_runner.http.url}/orders", orders, check)
    print(f"everything stopped; the demo took {time.perf_counter() - started:.1f} s; every reply right: {ok}")
    return ok


async def _exercise(flow: Flow, url: str, orders: int, check: Callable[[str, bool], None]) -> None:
    """One order walked through, the event and the heartbeat awaited, then ``orders`` orders at once."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:
        print(f"[client]   POST {url} {{'id': 1, 'amount': 42}}")
        status, body = await _post(session, url, {"id": 1, "amount": 42})
        print(f"[client]   <- HTTP {status} {body}")
        check("the first order", status == 200 and body == _expected(1, 42))
        print(f"HTTP answered through the broker: {status == 200 and body == _expected(1, 42)}")
        seen = await flow.reached("event:orders", 1) and await flow.reached("event:payments", 1)
        print(f"event order.paid seen by both services (MULTICAST): {seen}")
        check("the event order.paid reached both services", seen)
        fired = await flow.reached("heartbeat", 1, timeout=3.0)  # the cron fires every second
        print(f"periodic task fired: {fired}")
        check("the heartbeat", fired)

        flow.verbose = False
        begun = time.perf_counter()
        answers = await asyncio.gather(
            *(_post(session, url, {"id": i, "amount": i % 100}) for i in range(2, orders + 2))
        )
        elapsed = time.perf_counter() - begun
        right = sum(1 for i, answer in enumerate(answers, 2) if answer == (200, _expected(i, i % 100)))
        check(f"{orders - right} of {orders} orders answered wrong", right == orders)
        events = all([await flow.reached(f"event:{name}", orders + 1) for name in ("orders", "payments")])
        check("an order.paid event went missing", events)
        print(
            f"{orders} orders through HTTP and the broker (command, reply, event) in {elapsed:.2f} s = "
            f"{orders / elapsed:,.0f} req/s, {CONNECTIONS} in flight concurrently over {CLIENTS} pooled "
            f"broker clients; {right} answered right, "
            f"{flow.counts['event:orders'] + flow.counts['event:payments']} events handled"
        )


async def _post(session: aiohttp.ClientSession, url: str, order: dict[str, int]) -> tuple[int, Any]:
    async with session.post(url, json=order, timeout=aiohttp.ClientTimeout(total=2 * WAIT)) as response:
        return response.status, await response.json()


def _expected(order: int, amount: int) -> dict[str, Any]:
    return {"order": order, "paid": True, "receipt": f"r-{order}", "charged": amount}


def run() -> int:
    """Run the demo; the exit code is 0 when every reply came back right."""
    tune_gc()  # as ``minos-networks run`` does for a service
    return 0 if run_main(main()) else 1
