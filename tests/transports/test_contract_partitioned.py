"""The transport contract, run against PartitionedConnection over two ZeroMQ brokers; and how topics split."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from functools import partial

import pytest

from minos.networks.testing import TransportContract
from minos.networks.transports import ZmqConnection
from minos.networks.transports.partitioned import PartitionedConnection, partition_of

HEARTBEAT = 0.1


class TestPartitionedOverTwoBrokers(TransportContract):
    @pytest.fixture
    def transport_resources(self, zmq_context, broker_threads):
        self.context, self.start_thread = zmq_context, broker_threads

    async def start_broker(self, *, max_messages):
        return [
            self.start_thread(
                f"inproc://minos-part-{uuid.uuid4().hex}",
                max_messages=max_messages,
                heartbeat_interval=HEARTBEAT,
            )
            for _ in range(2)
        ]

    async def stop_broker(self, broker):
        pass  # the broker_threads fixture stops them

    def connection(self, broker, *, on_delivery, window, max_in_flight):
        def part(endpoint, deliver, part_window):
            return ZmqConnection(
                endpoint,
                context=self.context,
                on_delivery=deliver,
                window=part_window,
                max_in_flight=max_in_flight,
                heartbeat_interval=HEARTBEAT,
            )

        return PartitionedConnection(
            [partial(part, server.endpoint) for server in broker], on_delivery=on_delivery, window=window
        )

    async def kill(self, connection):
        await connection.abort()


def test_topics_spread_over_the_partitions_and_each_always_lands_on_the_same_one():
    topics = [f"orders.{index}" for index in range(1000)]
    counts = Counter(partition_of(topic, 3) for topic in topics)
    assert set(counts) == {0, 1, 2}
    assert min(counts.values()) > 250  # roughly even
    assert [partition_of(topic, 3) for topic in topics] == [partition_of(topic, 3) for topic in topics]
    # Every process must agree: no per-process hash seed may change the answer.
    script = "from minos.networks.transports.partitioned import partition_of as p; print([p(f'orders.{i}', 3) for i in range(1000)])"
    for seed in ("1", "2"):
        output = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert output.strip() == str([partition_of(topic, 3) for topic in topics])


async def test_each_topic_goes_through_the_broker_that_owns_it_only(zmq_context, broker_threads):
    brokers = [
        broker_threads(f"inproc://minos-own-{uuid.uuid4().hex}", heartbeat_interval=HEARTBEAT)
        for _ in range(2)
    ]
    received = []

    def part(endpoint, deliver, window):
        return ZmqConnection(
            endpoint, context=zmq_context, on_delivery=deliver, window=window, heartbeat_interval=HEARTBEAT
        )

    done = asyncio.Event()

    def on_delivery(incoming):
        received.append(incoming)
        connection.ack([incoming.tag])
        if len(received) == 2:
            done.set()

    connection = PartitionedConnection([partial(part, b.endpoint) for b in brokers], on_delivery=on_delivery)
    await connection.open()
    try:
        await connection.subscribe("group", ["orders.created", "orders.paid"])
        await connection.publish("orders.created", b"created", 0)
        await connection.publish("orders.paid", b"paid", 0)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await connection.close()
    assert sorted(incoming.body for incoming in received) == [b"created", b"paid"]
    assert [broker.server.stats.published for broker in brokers] == [1, 1]  # one topic each
