"""Publishers, subscribers, handlers and clients end to end, over each transport a service can use."""

import asyncio
from uuid import uuid4

import pytest

from minos.common import Config
from minos.networks import (
    REQUEST_HEADERS_CONTEXT_VAR,
    REQUEST_REPLY_TOPIC_CONTEXT_VAR,
    BrokerClient,
    BrokerClientPool,
    BrokerDispatcher,
    BrokerHandler,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    BrokerMessageV1Strategy,
    BrokerPublisher,
    BrokerSubscriber,
    InMemoryBrokerPublisher,
    InMemoryBrokerSubscriber,
    MinosHandlerNotFoundEnoughEntriesException,
    Request,
    Response,
    ResponseException,
    enroute,
)

WAIT = 10  # seconds any single wait in these tests may take before the test fails


def message(topic, content=None, **kwargs):
    return BrokerMessageV1(topic, BrokerMessageV1Payload(content), **kwargs)


async def test_a_published_message_reaches_a_subscriber_exactly(config, broker):
    async with (
        BrokerSubscriber.from_config(config, ["order.created"]) as subscriber,
        BrokerPublisher.from_config(config) as publisher,
    ):
        sent = message("order.created", {"id": uuid4(), "total": 3})
        await publisher.send(sent)
        received = await asyncio.wait_for(subscriber.receive(), WAIT)
    assert received == sent


async def test_a_subscriber_only_gets_its_topics(config, broker):
    async with (
        BrokerSubscriber.from_config(config, ["wanted"]) as subscriber,
        BrokerPublisher.from_config(config) as publisher,
    ):
        await publisher.send(message("unwanted", 1))
        await publisher.send(message("wanted", 2))
        received = await asyncio.wait_for(subscriber.receive(), WAIT)
    assert received.topic == "wanted"
    assert received.content == 2


async def test_multicast_reaches_each_group_and_unicast_one(config, broker):
    async with (
        BrokerSubscriber.from_config(config, ["t"], group="a") as a,
        BrokerSubscriber.from_config(config, ["t"], group="b") as b,
        BrokerPublisher.from_config(config) as publisher,
    ):
        await publisher.send(message("t", "everyone", strategy=BrokerMessageV1Strategy.MULTICAST))
        assert (await asyncio.wait_for(a.receive(), WAIT)).content == "everyone"
        assert (await asyncio.wait_for(b.receive(), WAIT)).content == "everyone"
        await publisher.send(message("t", "one"))
        done, pending = await asyncio.wait(
            [asyncio.ensure_future(a.receive()), asyncio.ensure_future(b.receive())],
            timeout=WAIT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert [task.result().content for task in done] == ["one"]
        for task in pending:
            task.cancel()


class Orders:
    @enroute.broker.command("order.get")
    async def get(self, request: Request) -> Response:
        content = await request.content()
        REQUEST_HEADERS_CONTEXT_VAR.get()["served-by"] = "orders"
        return Response({"id": content["id"], "status": "paid"})

    @enroute.broker.command("order.missing")
    async def missing(self, request: Request) -> Response:
        raise ResponseException("no such order", status=404)


async def test_a_request_gets_its_reply_with_the_exact_status_and_headers(config, broker):
    handler = BrokerHandler(
        BrokerDispatcher.from_routes(_routes(Orders)),
        BrokerSubscriber.from_config(config, ["order.get", "order.missing"]),
        concurrency=2,
    )
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            await client.send(message("order.get", {"id": 7}))
            reply = await asyncio.wait_for(client.receive(), WAIT)
            assert reply.content == {"id": 7, "status": "paid"}
            assert reply.status == BrokerMessageV1Status.SUCCESS
            assert reply.headers["served-by"] == "orders"
            request = message("order.missing", None)
            await client.send(request)
            reply = await asyncio.wait_for(client.receive(), WAIT)
            assert reply.status == 404
            assert reply.content == "no such order"
            assert reply.identifier == request.identifier
    finally:
        await handler.stop()


async def test_with_concurrency_one_messages_are_handled_in_order(config, broker):
    seen = []
    done = asyncio.Event()
    count = 300
    test_loop = asyncio.get_running_loop()

    async def record(request: Request) -> None:  # runs in the handler actor's loop
        seen.append(await request.content())
        if len(seen) == count:
            test_loop.call_soon_threadsafe(done.set)

    handler = BrokerHandler(
        BrokerDispatcher({"seq": record}), BrokerSubscriber.from_config(config, ["seq"]), concurrency=1
    )
    await handler.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            await asyncio.gather(*(publisher.send(message("seq", i)) for i in range(count)))
            await asyncio.wait_for(done.wait(), WAIT)
    finally:
        await handler.stop()
    assert seen == list(range(count))


async def test_concurrency_bounds_how_many_handlers_run_at_once(config, broker):
    running = 0
    peak = 0
    release = asyncio.Event()  # waited on in the actor's loop, set there through call_soon_threadsafe
    reached = asyncio.Event()
    finished = 0
    all_finished = asyncio.Event()
    test_loop = asyncio.get_running_loop()

    async def slow(request: Request) -> None:  # runs in the handler actor's loop
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        if running == 3:
            test_loop.call_soon_threadsafe(reached.set)
        await release.wait()
        running -= 1
        finished += 1
        if finished == 8:
            test_loop.call_soon_threadsafe(all_finished.set)

    handler = BrokerHandler(
        BrokerDispatcher({"slow": slow}), BrokerSubscriber.from_config(config, ["slow"]), concurrency=3
    )
    await handler.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            for i in range(8):
                await publisher.send(message("slow", i))
            await asyncio.wait_for(reached.wait(), WAIT)
            handler.subscriber.service.handle._loop.call_soon_threadsafe(release.set)
            await asyncio.wait_for(all_finished.wait(), WAIT)
    finally:
        await handler.stop()
    assert peak == 3


async def test_a_duplicate_message_is_handled_once(config, broker):
    handled = []
    second = asyncio.Event()
    test_loop = asyncio.get_running_loop()

    async def record(request: Request) -> None:  # runs in the handler actor's loop
        handled.append(await request.content())
        if len(handled) == 2:
            test_loop.call_soon_threadsafe(second.set)

    handler = BrokerHandler(BrokerDispatcher({"t": record}), BrokerSubscriber.from_config(config, ["t"]), 1)
    await handler.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            original = message("t", "once")
            await publisher.send(original)
            await publisher.send(original)  # same identifier: a resend
            await publisher.send(message("t", "marker"))
            await asyncio.wait_for(second.wait(), WAIT)
    finally:
        await handler.stop()
    assert handled == ["once", "marker"]


async def test_receive_many_times_out_with_the_seed_exception_and_drops_the_late_reply(config, broker):
    async with BrokerClient.from_config(config) as client:
        request = message("nobody.listens", 1)
        await client.send(request)
        with pytest.raises(MinosHandlerNotFoundEnoughEntriesException, match="only 0 of 1 messages"):
            async for _ in client.receive_many(1, timeout=0.1):
                pass
        # The late reply to that request arrives now, then a message that answers nothing pending.
        async with BrokerPublisher.from_config(config) as publisher:
            await publisher.send(message(client.topic, "late", identifier=request.identifier))
            await publisher.send(message(client.topic, "fresh"))
        received = await asyncio.wait_for(client.receive(), WAIT)
    assert received.content == "fresh"


async def test_concurrent_receivers_each_get_a_message(config, broker):
    async with (
        BrokerSubscriber.from_config(config, ["t"]) as subscriber,
        BrokerPublisher.from_config(config) as publisher,
    ):
        receivers = [asyncio.ensure_future(subscriber.receive()) for _ in range(3)]
        for i in range(3):
            await publisher.send(message("t", i))
        received = await asyncio.wait_for(asyncio.gather(*receivers), WAIT)
    assert sorted(m.content for m in received) == [0, 1, 2]


async def test_the_client_pool_sets_the_reply_topic_while_a_client_is_lent(config, broker):
    async with BrokerClientPool.from_config(config, maxsize=1) as pool:
        assert REQUEST_REPLY_TOPIC_CONTEXT_VAR.get() is None
        async with pool.acquire() as client:
            assert REQUEST_REPLY_TOPIC_CONTEXT_VAR.get() == client.topic
        assert REQUEST_REPLY_TOPIC_CONTEXT_VAR.get() is None
        async with pool.acquire() as again:
            assert again is client


async def test_the_in_memory_publisher_records_and_the_in_memory_subscriber_replays():
    publisher = InMemoryBrokerPublisher()
    sent = message("t", {"a": 1})
    await publisher.send(sent)
    assert publisher.messages == [sent]
    subscriber = InMemoryBrokerSubscriber(["t"], [sent])
    assert await subscriber.receive() == sent


def _routes(service):
    from minos.networks import BrokerRouter

    return BrokerRouter([service]).get_routes()


async def test_stopping_with_a_handler_in_flight_is_bounded_and_the_message_goes_to_another_member(
    config, broker
):
    test_loop = asyncio.get_running_loop()
    first_started = asyncio.Event()
    handled_by_second = asyncio.Event()
    never = asyncio.Event()

    async def stuck(request: Request) -> None:  # runs in the first handler's actor loop
        test_loop.call_soon_threadsafe(first_started.set)
        await never.wait()

    async def quick(request: Request) -> None:
        test_loop.call_soon_threadsafe(handled_by_second.set)

    settings = dict(config.get_mapping("interfaces.broker"), close_timeout=0.3)
    fast_stop = Config({"name": config.name, "interfaces": {"broker": settings}})
    first = BrokerHandler(
        BrokerDispatcher({"job": stuck}), BrokerSubscriber.from_config(fast_stop, ["job"]), 1
    )
    second = BrokerHandler(BrokerDispatcher({"job": quick}), BrokerSubscriber.from_config(config, ["job"]), 1)
    await first.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            await publisher.send(message("job", "work"))
            await asyncio.wait_for(first_started.wait(), WAIT)
            await second.start()
            loop = asyncio.get_running_loop()
            began = loop.time()
            await first.stop()
            assert loop.time() - began < 0.3 * 3 + 2  # the close timeout bounds the stop
            await asyncio.wait_for(handled_by_second.wait(), WAIT)
    finally:
        await first.stop()
        await second.stop()


async def test_a_publisher_and_a_reply_subscriber_run_in_the_callers_loop_unless_told_otherwise(
    config, broker
):
    import threading

    from minos.networks.brokers import connection_factory

    def loop_threads() -> set[str]:
        return {thread.name for thread in threading.enumerate() if thread.name.endswith("-loop")}

    async with (
        BrokerPublisher.from_config(config, name="fast-publisher") as fast,
        BrokerPublisher(connection_factory(config), name="own-publisher", in_caller_loop=False) as own,
        BrokerSubscriber.from_config(config, ["caller.loop"], group="caller-loop") as subscriber,
    ):
        await fast.send(BrokerMessageV1("caller.loop", BrokerMessageV1Payload(1)))
        await own.send(BrokerMessageV1("caller.loop", BrokerMessageV1Payload(2)))
        received = sorted([(await subscriber.receive()).content, (await subscriber.receive()).content])
        running = loop_threads()
    assert received == [1, 2]
    assert "minos-own-publisher-loop" in running
    assert "minos-fast-publisher-loop" not in running
    assert not any(name.startswith(f"minos-{config.name}-subscriber") for name in running)


@pytest.mark.parametrize(
    ("broker", "problem"),
    [
        ({"partitions": ["inproc://a", "ipc:///tmp/b"]}, "ipc:// or tcp://"),
        ({"partitions": ["ipc:///tmp/a", "ipc:///tmp/a"]}, "distinct"),
        ({"partitions": ["ipc:///tmp/a"], "transport": "memory"}, "transport zmq"),
        ({"partitions": ["ipc:///tmp/a", "ipc:///tmp/b"], "embedded": True}, "broker process"),
    ],
)
def test_bad_partitions_are_refused_naming_the_key(broker, problem):
    from minos.common import ConfigError
    from minos.networks.brokers import broker_settings

    with pytest.raises(ConfigError) as caught:
        broker_settings(Config({"name": "svc", "interfaces": {"broker": broker}}))
    assert "interfaces.broker." in str(caught.value)
    assert problem in str(caught.value)


def test_partitions_make_a_partitioned_connection_to_broker_processes():
    from minos.networks.brokers import broker_settings, connection_factory
    from minos.networks.transports import PartitionedConnection

    config = Config(
        {"name": "svc", "interfaces": {"broker": {"partitions": ["ipc:///tmp/a", "tcp://127.0.0.1:5555"]}}}
    )
    settings = broker_settings(config)
    assert settings.partitions == ("ipc:///tmp/a", "tcp://127.0.0.1:5555")
    assert not settings.embedded
    connection = connection_factory(config)(on_delivery=None, window=10)
    assert isinstance(connection, PartitionedConnection)
    assert [part.endpoint for part in connection.parts] == ["ipc:///tmp/a", "tcp://127.0.0.1:5555"]
