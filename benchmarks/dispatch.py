"""The ``dispatch`` scenario: BrokerDispatcher.dispatch to a trivial handler, with or without middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from benchmarks import Result, best_rate
from benchmarks.codec import typical_message
from minos.networks.enroute import BrokerDispatcher, BrokerRequest, BrokerRouter, enroute
from minos.networks.protocol import BrokerMessageV1, Request, Response

__all__ = ["run"]

CEILING = "a bare `await handler(request)` loop on the same handler"
TOPIC = "order.created"


class OrderService:
    """The service under test: one command whose handler does nothing."""

    @enroute.broker.command(TOPIC)
    async def create_order(self, request: Request) -> Response | None:
        return None


async def passthrough(
    request: Request, inner: Callable[[Request], Awaitable[Response | None]]
) -> Response | None:
    """The cheapest middleware there is: it only calls the next layer."""
    return await inner(request)


def run(quick: bool) -> list[Result]:
    """Measure msgs/s through ``dispatch``, bare and behind one middleware, next to a bare handler call."""
    messages = 20_000 if quick else 200_000
    repetitions = 3 if quick else 7
    message = typical_message()
    bare = BrokerDispatcher.from_routes(BrokerRouter([OrderService]).routes)
    wrapped = BrokerDispatcher.from_routes(BrokerRouter([OrderService], middleware=[passthrough]).routes)
    handler = OrderService().create_order
    request = BrokerRequest(message)

    loop = asyncio.new_event_loop()
    try:
        for dispatcher in (bare, wrapped):  # both must really reach the handler
            assert loop.run_until_complete(dispatcher.dispatch(message)).ok

        def ceiling(n: int) -> None:
            async def calls() -> None:
                for _ in range(n):
                    await handler(request)

            loop.run_until_complete(calls())

        def through(dispatcher: BrokerDispatcher) -> Callable[[int], None]:
            dispatch = dispatcher.dispatch

            def measured(n: int) -> None:
                async def calls(target: BrokerMessageV1) -> None:
                    for _ in range(n):
                        await dispatch(target)

                loop.run_until_complete(calls(message))

            return measured

        results = []
        for path, dispatcher in [("dispatch", bare), ("dispatch-middleware", wrapped)]:
            # Interleave the two so that a noisy neighbour hurts both alike.
            _, ceiling_rate = best_rate(ceiling, messages, repetitions)
            seconds, rate = best_rate(through(dispatcher), messages, repetitions)
            results.append(
                Result(
                    scenario="dispatch",
                    path=path,
                    messages=messages,
                    seconds=seconds,
                    msgs_per_s=rate,
                    ceiling_msgs_per_s=ceiling_rate,
                    ratio=rate / ceiling_rate,
                    ceiling=CEILING,
                )
            )
        return results
    finally:
        loop.close()
