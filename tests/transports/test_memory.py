"""MemoryBroker specifics: connections in different threads and event loops, and crashed peers."""

import asyncio
import threading

from minos.networks.transports import MemoryBroker, MemoryConnection

TIMEOUT = 5.0


async def test_a_connection_in_another_thread_and_loop_gets_its_deliveries_in_its_own_loop():
    broker = MemoryBroker()
    subscribed = threading.Event()
    done = threading.Event()
    seen: list[tuple[bytes, bool]] = []

    async def subscriber() -> None:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def on_delivery(incoming) -> None:
            seen.append((incoming.body, asyncio.get_running_loop() is loop))
            connection.ack([incoming.tag])
            if len(seen) == 50:
                finished.set_result(None)

        connection = MemoryConnection(broker, on_delivery=on_delivery, window=4)
        await connection.open()
        await connection.subscribe("audit", ["order.created"])
        subscribed.set()
        try:
            await asyncio.wait_for(finished, TIMEOUT)
        finally:
            await connection.close()
            done.set()

    thread = threading.Thread(target=asyncio.run, args=(subscriber(),), name="minos-test-subscriber")
    thread.start()
    try:
        assert await asyncio.to_thread(subscribed.wait, TIMEOUT)
        publisher = MemoryConnection(broker)
        await publisher.open()
        for i in range(50):
            await publisher.publish("order.created", b"%d" % i, 0)
        assert await asyncio.to_thread(done.wait, TIMEOUT)
        await publisher.close()
    finally:
        thread.join(TIMEOUT)
    assert seen == [(b"%d" % i, True) for i in range(50)]
    assert broker.stats.acknowledged == 50
    assert broker.size == 0


async def test_deliveries_to_a_connection_whose_loop_is_gone_go_to_another_member():
    broker = MemoryBroker()

    async def crash_after_subscribing() -> None:
        connection = MemoryConnection(broker, on_delivery=lambda incoming: None)
        await connection.open()
        await connection.subscribe("orders", ["order.created"])
        # returns without closing: its loop closes under it, as in a crashed thread

    thread = threading.Thread(target=asyncio.run, args=(crash_after_subscribing(),), name="minos-test-crash")
    thread.start()
    await asyncio.to_thread(thread.join, TIMEOUT)
    received = asyncio.get_running_loop().create_future()

    def on_delivery(incoming) -> None:
        if not received.done():
            received.set_result(incoming)

    survivor = MemoryConnection(broker, on_delivery=on_delivery)
    await survivor.open()
    await survivor.subscribe("orders", ["order.created"])
    publisher = MemoryConnection(broker)
    await publisher.open()
    for i in range(2):  # round robin: one of the two goes to the dead member first
        await publisher.publish("order.created", b"%d" % i, 0)
    incoming = await asyncio.wait_for(received, TIMEOUT)
    assert incoming.body in (b"0", b"1")
    assert broker.peers() == 2  # the dead one was dropped
    await survivor.close()
    await publisher.close()
