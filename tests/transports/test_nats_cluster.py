"""Failover on a three-node JetStream cluster: a publisher and a consumer ride through node losses.

Each test starts its own cluster (``nats_servers.NatsCluster``), kills nodes with SIGKILL while a
closed-loop publisher runs (every sender awaits its ``send`` before the next), and checks that every send
returns, that the consumer got every message (0 lost), and counts the duplicates. Losing the stream's
leader is a race (a publish in flight to the dying leader never gets its PubAck), so that scenario is
repeated on fresh streams.
"""

import asyncio
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from minos.common import Config
from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, BrokerPublisher
from minos.networks.protocol import FrameCodec
from minos.networks.transports import BrokerUnavailableError, NatsConnection, NatsSettings

from .nats_servers import NatsCluster, PrivateServer

TOPIC = "order.created"
SENDERS = 20
MESSAGES = 1200  # per round
SENDS_WAIT = 40.0  # seconds every send of a round gets to return once the nodes were killed
DELIVERY_WAIT = 30.0  # seconds the consumer gets to receive every message once the cluster is whole
CONNECT_TIMEOUT = 1.0  # a publish without PubAck goes again after twice this
ACK_WAIT = 2.0  # what a killed consumer's node held comes back after this
LEADER_LOSS_ROUNDS = 3

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]  # a cluster of its own per test: make test-slow


@pytest.fixture
def unstarted_cluster(tmp_path):
    """A three-node cluster on free ports, not started; every node is stopped at teardown."""
    if shutil.which("nats-server") is None:
        message = "nats-server is not on PATH; the cluster tests start a three-node cluster of their own"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = NatsCluster(tmp_path)
    yield cluster
    cluster.close()


@pytest.fixture
async def cluster(unstarted_cluster):
    """A three-node cluster whose JetStream answers."""
    await unstarted_cluster.start()
    return unstarted_cluster


def settings_for(stream: str, servers: tuple[str, ...]) -> dict:
    return {
        "servers": list(servers),
        "stream": stream,
        "subject_prefix": stream.lower(),
        "replicas": 3,
        "storage": "file",
        "connect_timeout": CONNECT_TIMEOUT,
        "reconnect_max_wait": 0.5,
        "ack_wait": ACK_WAIT,
        "pull_expires": 0.5,
    }


class Consumer:
    """A NatsConnection in group ``g`` on TOPIC that counts every message it gets by content."""

    def __init__(self, stream: str, servers: tuple[str, ...]) -> None:
        # The default connect_timeout: making a replicated stream on two busy cores may take over a second.
        settings = NatsSettings(**{**settings_for(stream, servers), "connect_timeout": 5.0})
        self.connection = NatsConnection(settings, on_delivery=self)
        self.received: Counter[int] = Counter()
        self._codec = FrameCodec()
        self._changed = asyncio.Event()

    def __call__(self, incoming) -> None:
        message = self._codec.decode([incoming.topic, incoming.body])
        self.received[message.content] += 1
        self.connection.ack([incoming.tag])
        self._changed.set()

    async def start(self) -> None:
        await self.connection.open()
        await self.connection.subscribe("g", [TOPIC])

    async def wait_all(self, count: int) -> None:
        await self.wait_for(lambda: len(self.received) >= count)

    async def wait_for(self, condition) -> None:
        async with asyncio.timeout(DELIVERY_WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    @property
    def duplicates(self) -> int:
        return sum(self.received.values()) - len(self.received)


def publisher_config(stream: str, servers: tuple[str, ...], **broker: object) -> Config:
    return Config(
        {
            "name": f"publisher-{stream.lower()}",
            "interfaces": {"broker": {"transport": "nats", "nats": settings_for(stream, servers), **broker}},
        }
    )


class ClosedLoop:
    """SENDERS tasks sending MESSAGES messages through a BrokerPublisher, each awaiting its send."""

    def __init__(self, stream: str, servers: tuple[str, ...]) -> None:
        self.publisher = BrokerPublisher.from_config(publisher_config(stream, servers))
        self.accepted = 0
        self.accepted_at: list[float] = []  # monotonic time of each acceptance
        self._threshold = 0
        self._reached = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        share = MESSAGES // SENDERS
        self._tasks = [
            asyncio.create_task(self._sender(range(i * share, (i + 1) * share))) for i in range(SENDERS)
        ]

    async def _sender(self, contents: range) -> None:
        for content in contents:
            await self.publisher.send(BrokerMessageV1(TOPIC, BrokerMessageV1Payload(content)))
            self.accepted += 1
            self.accepted_at.append(time.monotonic())
            if self.accepted >= self._threshold:
                self._reached.set()

    async def wait_accepted(self, count: int) -> None:
        self._threshold = count
        self._reached.clear()
        if self.accepted < count:
            await asyncio.wait_for(self._reached.wait(), SENDS_WAIT)

    async def wait_all_sent(self) -> None:
        """Every send returned (within SENDS_WAIT), none failed."""
        done, pending = await asyncio.wait(self._tasks, timeout=SENDS_WAIT)
        for task in pending:
            task.cancel()
        assert not pending, f"sends hung: {self.accepted} of {MESSAGES} accepted after {SENDS_WAIT} s"
        for task in done:
            task.result()
        assert self.accepted == MESSAGES


@dataclass
class BesideTheLeader:
    consumer: Consumer
    sender: ClosedLoop
    leader: PrivateServer
    survivor: PrivateServer  # the publisher's node: not the stream's leader


@asynccontextmanager
async def beside_the_leader(cluster: NatsCluster, prefix: str) -> AsyncIterator[BesideTheLeader]:
    """A consumer of a new stream, and a closed-loop publisher (not started) on a node that does not lead it."""
    stream = f"{prefix}{uuid.uuid4().hex[:6].upper()}"
    consumer = Consumer(stream, cluster.urls)
    await consumer.start()  # creates the stream, replicated on the three nodes
    leader = cluster.node(await cluster.stream_leader(stream))
    survivor = next(node for node in cluster.nodes if node is not leader)
    sender = ClosedLoop(stream, (survivor.url,))  # its own link stays up when the leader goes
    try:
        yield BesideTheLeader(consumer, sender, leader, survivor)
    finally:
        await sender.publisher.stop(2.0)
        await consumer.connection.close(1.0)


async def test_a_publisher_whose_node_survives_rides_through_the_loss_of_the_stream_leader(cluster):
    """The bug of issue 16: after a leader loss, publishes requeued on the PubAck timeout waited forever."""
    for round_ in range(LEADER_LOSS_ROUNDS):
        async with beside_the_leader(cluster, f"LEADER{round_}") as run:
            run.sender.start()
            await run.sender.wait_accepted(MESSAGES // 4)
            run.leader.kill()
            await run.sender.wait_all_sent()
            run.leader.start()
            await cluster.wait_jetstream()
            await run.consumer.wait_all(MESSAGES)
            assert set(run.consumer.received) == set(range(MESSAGES)), "lost messages"
            print(f"leader loss round {round_}: {run.consumer.duplicates} duplicates")


async def test_a_publisher_whose_node_survives_resumes_once_quorum_is_back(cluster):
    async with beside_the_leader(cluster, "QUORUM") as run:
        lost = [node for node in cluster.nodes if node is not run.survivor]  # the leader among them
        run.sender.start()
        await run.sender.wait_accepted(MESSAGES // 4)
        for node in lost:
            node.kill()
        # Longer than the PubAck timer (2 x connect_timeout): what was in flight must go again.
        await asyncio.sleep(3 * CONNECT_TIMEOUT)  # sync-ok: an outage of a set length
        stalled_at = run.sender.accepted
        assert stalled_at < MESSAGES, "the outage began after every send was accepted"
        restarted = time.monotonic()
        for node in lost:
            node.start()
        await cluster.stream_leader(run.consumer.connection.settings.stream)
        leader_seen = time.monotonic()
        await run.sender.wait_all_sent()
        first = run.sender.accepted_at[stalled_at]  # the first acceptance after the outage began
        await run.consumer.wait_all(MESSAGES)
        assert set(run.consumer.received) == set(range(MESSAGES)), "lost messages"
        print(
            f"quorum loss: stalled at {stalled_at}; the first send accepted {first - restarted:.2f} s after the "
            f"nodes were started again (a leader seen by the test after {leader_seen - restarted:.2f} s), "
            f"{run.consumer.duplicates} duplicates"
        )


async def test_a_consumer_whose_node_dies_reconnects_and_gets_every_message(cluster):
    stream = f"CONSUMER{uuid.uuid4().hex[:6].upper()}"
    first, second, _ = cluster.nodes
    consumer = Consumer(stream, (first.url,))  # nats-py learns the other nodes from the cluster
    await consumer.start()
    await cluster.stream_leader(stream)
    sender = ClosedLoop(stream, (second.url,))
    try:
        sender.start()
        await sender.wait_accepted(MESSAGES // 4)
        first.kill()
        await sender.wait_all_sent()
        await consumer.wait_all(MESSAGES)  # while its first node is still down
        assert set(consumer.received) == set(range(MESSAGES)), "lost messages"
        print(f"consumer node loss: {consumer.duplicates} duplicates")
    finally:
        await sender.publisher.stop(2.0)
        await consumer.connection.close(1.0)


async def test_a_send_with_a_timeout_fails_naming_servers_and_stream_while_the_cluster_has_no_quorum(cluster):
    stream = f"TIMEOUT{uuid.uuid4().hex[:6].upper()}"
    consumer = Consumer(stream, cluster.urls)
    await consumer.start()
    leader = await cluster.stream_leader(stream)
    survivor = next(node for node in cluster.nodes if node.name != leader)
    publisher = BrokerPublisher.from_config(publisher_config(stream, (survivor.url,), send_timeout=3.0))
    try:
        await publisher.send(BrokerMessageV1(TOPIC, BrokerMessageV1Payload(0)))
        lost = [node for node in cluster.nodes if node is not survivor]
        for node in lost:
            node.kill()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=rf"{stream}.*{survivor.url}.*send_timeout of 3.0 s"):
            await publisher.send(BrokerMessageV1(TOPIC, BrokerMessageV1Payload(1)))
        assert time.monotonic() - started < 3.0 + 1.0
        for node in lost:
            node.start()
        await cluster.stream_leader(stream)
        await publisher.send(BrokerMessageV1(TOPIC, BrokerMessageV1Payload(2)))  # quorum back: accepted again
        await consumer.wait_for(lambda: {0, 2} <= set(consumer.received))
    finally:
        await publisher.stop(2.0)
        await consumer.connection.close(1.0)


async def test_a_connection_opened_while_the_cluster_elects_its_leaders_waits_for_them(unstarted_cluster):
    for node in unstarted_cluster.nodes:
        node.start()  # listening, JetStream not elected yet
    settings = NatsSettings(**{**settings_for("ELECTING", unstarted_cluster.urls), "connect_timeout": 5.0})
    connection = NatsConnection(settings, on_delivery=lambda incoming: None)
    await connection.open()  # waits for the meta leader, then creates the replicated stream
    try:
        await connection.publish(TOPIC, b"first", 0)  # accepted by the new stream
    finally:
        await connection.close(1.0)


async def test_a_connection_to_a_cluster_without_quorum_fails_in_time_with_one_clear_error(unstarted_cluster):
    node = unstarted_cluster.nodes[0]
    node.start()  # alone: no JetStream meta leader can be elected
    connection = NatsConnection(NatsSettings(**settings_for("NOQUORUM", (node.url,))))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="without a quorum") as raised:
        await connection.open()
    assert time.monotonic() - started < connection.open_timeout + 1.0
    assert "NOQUORUM" in str(raised.value)
    assert node.url in str(raised.value)


async def test_a_publisher_started_on_a_cluster_without_quorum_fails_with_the_connections_own_error(
    unstarted_cluster,
):
    node = unstarted_cluster.nodes[0]
    node.start()  # alone: no JetStream meta leader can be elected
    config = Config(
        {
            "name": "noquorum",
            "interfaces": {
                "broker": {
                    "transport": "nats",
                    "nats": {**settings_for("NOQUORUM", (node.url,)), "connect_timeout": 2.0},
                }
            },
        }
    )
    publisher = BrokerPublisher.from_config(config)
    started = time.monotonic()
    # The actor's start timeout is above the connection's own: the cause reaches the caller, not a timeout.
    with pytest.raises(BrokerUnavailableError, match="without a quorum"):
        await publisher.start()
    assert time.monotonic() - started < 3 * 2.0 + 2.0
    await publisher.stop(1.0)
