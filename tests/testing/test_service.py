"""ServiceHarness runs service classes on a private broker and waits for their handlers, on both transports."""

import asyncio
import threading

import pytest

from minos.networks import (
    BrokerClient,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    Request,
    Response,
    ResponseException,
    enroute,
)
from minos.networks.testing import ServiceHarness

TRANSPORTS = ["memory", "zmq"]


class OrderService:
    """A command, an event that records what it got in PAID, and two handlers that fail."""

    @enroute.broker.command("order.create")
    async def create(self, request: Request) -> Response:
        content = await request.content()
        return Response({"id": content["id"], "status": "created"})

    @enroute.broker.event("order.paid")
    async def paid(self, request: Request) -> None:
        await asyncio.sleep(0)  # sync-ok: the handler suspends once; send must still wait for its end
        PAID.append(await request.content())

    @enroute.broker.command("order.broken")
    async def broken(self, request: Request) -> Response:
        raise ValueError("the warehouse is on fire")

    @enroute.broker.command("order.missing")
    async def missing(self, request: Request) -> Response:
        raise ResponseException("no such order", status=404)


PAID: list[object] = []


@pytest.fixture(autouse=True)
def clean_paid():
    PAID.clear()
    yield
    PAID.clear()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_command_gets_its_reply(transport):
    async with ServiceHarness([OrderService], transport=transport) as harness:
        reply = await harness.request("order.create", {"id": 7})
    assert reply.ok
    assert reply.status == BrokerMessageV1Status.SUCCESS
    assert reply.content == {"id": 7, "status": "created"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_event_handler_has_finished_when_send_returns(transport):
    async with ServiceHarness([OrderService], transport=transport) as harness:
        for number in range(5):
            reply = await harness.send("order.paid", {"id": number})
            assert [{"id": index} for index in range(number + 1)] == PAID  # right after the await
            assert reply is not None
            assert reply.ok
            assert reply.content is None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_concurrent_sends_each_get_their_own_reply(transport):
    async with ServiceHarness([OrderService], transport=transport) as harness:
        replies = await asyncio.gather(*(harness.request("order.create", {"id": i}) for i in range(20)))
    assert [reply.content["id"] for reply in replies] == list(range(20))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_handler_that_raises_gives_a_500_reply_with_its_message(transport):
    async with ServiceHarness([OrderService], transport=transport) as harness:
        reply = await harness.request("order.broken")
        missing = await harness.request("order.missing")
    assert reply.status == BrokerMessageV1Status.SYSTEM_ERROR
    assert not reply.ok
    # the handler and the error's type go out; the error's own text may hold secrets, so only the log has it
    handler = f"{OrderService.__module__}.OrderService.broken"
    assert reply.content == f"Internal error in handler {handler!r} while handling 'order.broken': ValueError"
    assert missing.status == 404
    assert missing.content == "no such order"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_without_wait_returns_once_the_broker_accepted_it(transport):
    async with ServiceHarness([OrderService], transport=transport) as harness:
        assert await harness.send("order.paid", {"id": "no-wait"}, wait=False) is None
        await harness.send("order.paid", {"id": "waited"})  # concurrency 5: the first may finish later
        client = BrokerClient.from_config(harness.config)  # the harness's config reaches its broker
        async with client:
            await client.send(BrokerMessageV1("order.create", BrokerMessageV1Payload({"id": 1})))
            reply = await asyncio.wait_for(client.receive(), 10)
    assert reply.content == {"id": 1, "status": "created"}
    assert {"id": "waited"} in PAID


async def test_an_unknown_topic_is_refused_at_once():
    async with ServiceHarness([OrderService]) as harness:
        with pytest.raises(LookupError, match=r"order\.unknown"):
            await harness.send("order.unknown", 1)


async def test_a_reply_that_never_comes_times_out():
    class Slow:
        @enroute.broker.command("slow")
        async def slow(self, request: Request) -> None:
            await asyncio.Event().wait()  # never answers; the stop cancels it

    async with ServiceHarness([Slow], broker={"close_timeout": 0.2}) as harness:
        with pytest.raises(TimeoutError, match="slow"):
            await harness.send("slow", timeout=0.1)


async def test_sending_before_start_is_an_error():
    harness = ServiceHarness([OrderService])
    with pytest.raises(RuntimeError, match="not started"):
        await harness.send("order.create", {"id": 1})
    await harness.stop()  # stopping a harness that never started is harmless


def test_a_bad_transport_is_refused():
    with pytest.raises(ValueError, match="transport"):
        ServiceHarness([OrderService], transport="nats")  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_harnesses_are_isolated_and_leave_no_thread_behind(transport):
    async with (
        ServiceHarness([OrderService], transport=transport) as first,
        ServiceHarness([OrderService], transport=transport) as second,
    ):
        assert first.config.name != second.config.name
        assert (await first.request("order.create", {"id": 1})).content["id"] == 1
        assert (await second.request("order.create", {"id": 2})).content["id"] == 2
        assert any(thread.name.startswith("minos-") for thread in threading.enumerate())
    # the suite's autouse fixture fails this test if a minos- thread outlives it
