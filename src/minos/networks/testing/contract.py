"""The transport contract: what every ``Connection`` and its broker must do, as pytest tests to inherit.

Subclass ``TransportContract`` in a test module, name the subclass ``Test...`` and implement its hooks;
pytest then runs every test below against your transport::

    class TestMemoryTransport(TransportContract):
        async def start_broker(self, *, max_messages):
            return MemoryBroker(max_messages=max_messages)

        async def stop_broker(self, broker):
            pass

        def connection(self, broker, *, on_delivery, window, max_in_flight):
            return MemoryConnection(broker, on_delivery=on_delivery, window=window, max_in_flight=max_in_flight)

        async def kill(self, connection):
            await connection.abort()

To bring in other fixtures (a temporary directory, a ZeroMQ context), override the
``transport_resources`` fixture. The tests need pytest-asyncio. They wait on futures with a timeout (``timeout``, 5 s), never on sleeps;
one test checks that a publisher is held back by waiting ``hold_back`` seconds for what must not happen.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from ..protocol.frames import MULTICAST_CODE, UNICAST_CODE
from ..transports import BrokerFullError, Connection, ConnectionClosedError, DeliveryHandler, Incoming

__all__ = ["Peer", "TransportContract"]


@dataclass(eq=False)
class Peer:
    """A connection made by the contract, with what it received (acknowledged at once if ``auto_ack``)."""

    connection: Connection = field(init=False)
    auto_ack: bool = True
    received: list[Incoming] = field(default_factory=list)

    @property
    def bodies(self) -> list[bytes]:
        """The bodies received, in arrival order."""
        return [incoming.body for incoming in self.received]


class TransportContract(ABC):
    """The behaviour a transport promises, as tests; subclass it with the hooks of your transport."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]
    timeout: ClassVar[float] = 5.0
    """Seconds any expected event may take."""
    hold_back: ClassVar[float] = 0.2
    """Seconds during which a publisher must stay held back by a full broker."""

    # Hooks ----------------------------------------------------------------------------------------------

    @abstractmethod
    async def start_broker(self, *, max_messages: int) -> Any:
        """Start a broker holding at most ``max_messages``; return whatever ``connection`` needs to reach it."""

    @abstractmethod
    async def stop_broker(self, broker: Any) -> None:
        """Stop a broker made by ``start_broker`` (after every connection to it closed)."""

    @abstractmethod
    def connection(
        self, broker: Any, *, on_delivery: DeliveryHandler, window: int, max_in_flight: int
    ) -> Connection:
        """Make an unopened connection to ``broker``."""

    async def kill(self, connection: Connection) -> None:
        """End ``connection`` as a crash would, without a clean close; by default it just closes."""
        await connection.close(timeout=0)

    # Harness --------------------------------------------------------------------------------------------

    @pytest.fixture
    def transport_resources(self) -> None:
        """Override this fixture to request the fixtures your hooks need (a temporary directory, a context).

        The contract's harness depends on it, so it is set up before the test's first broker and torn
        down after every connection closed and every broker stopped.
        """
        return None

    @pytest_asyncio.fixture(autouse=True)
    async def _contract_harness(self, transport_resources: None) -> AsyncIterator[None]:
        self._brokers: list[Any] = []
        self._peers: list[Peer] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        try:
            yield
        finally:
            for peer in reversed(self._peers):
                if hasattr(peer, "connection"):
                    await peer.connection.close(timeout=1.0)
            for broker in reversed(self._brokers):
                await self.stop_broker(broker)

    async def broker(self, *, max_messages: int = 10_000) -> Any:
        """Start a broker that the test's teardown stops."""
        broker = await self.start_broker(max_messages=max_messages)
        self._brokers.append(broker)
        return broker

    async def connect(
        self,
        broker: Any,
        *,
        auto_ack: bool = True,
        window: int = 1000,
        max_in_flight: int = 1000,
        then: Callable[[Peer, Incoming], None] | None = None,
    ) -> Peer:
        """Open a connection that records its deliveries; ``then`` runs after each is recorded."""
        peer = Peer(auto_ack=auto_ack)

        def on_delivery(incoming: Incoming) -> None:
            peer.received.append(incoming)
            if peer.auto_ack:
                peer.connection.ack([incoming.tag])
            if then is not None:
                then(peer, incoming)
            self._check_waiters()

        peer.connection = self.connection(
            broker, on_delivery=on_delivery, window=window, max_in_flight=max_in_flight
        )
        self._peers.append(peer)
        await peer.connection.open()
        return peer

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Return once ``condition()`` holds (checked after every delivery, or a call of ``_check_waiters``);
        fail after ``timeout``."""
        if condition():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, future))
        try:
            await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            pytest.fail(f"waited {self.timeout} s for {what}; received: {self._summary()}")

    def _check_waiters(self) -> None:
        for condition, future in list(self._waiters):
            if not future.done() and condition():
                future.set_result(None)
                self._waiters.remove((condition, future))

    def _summary(self) -> str:
        return "; ".join(f"peer {index}: {peer.bodies!r:.300}" for index, peer in enumerate(self._peers))

    # Tests ----------------------------------------------------------------------------------------------

    async def test_a_published_message_reaches_its_subscriber(self) -> None:
        broker = await self.broker()
        subscriber = await self.connect(broker)
        await subscriber.connection.subscribe("billing", ["order.created"])
        publisher = await self.connect(broker)
        await publisher.connection.publish("order.created", b"order 1", UNICAST_CODE)
        await self.wait_until(lambda: len(subscriber.received) == 1, "the subscriber to get the message")
        [incoming] = subscriber.received
        assert (incoming.topic, incoming.body, incoming.redelivered) == (b"order.created", b"order 1", False)

    async def test_a_subscriber_gets_only_the_topics_it_subscribed_to(self) -> None:
        broker = await self.broker()
        orders = await self.connect(broker)
        await orders.connection.subscribe("orders", ["order.created"])
        payments = await self.connect(broker)
        await payments.connection.subscribe("payments", ["payment.made"])
        publisher = await self.connect(broker)
        for i in range(10):
            publisher.connection.publish_nowait("order.created", b"order %d" % i, UNICAST_CODE)
            publisher.connection.publish_nowait("payment.made", b"payment %d" % i, UNICAST_CODE)
        await self.wait_until(
            lambda: len(orders.received) >= 10 and len(payments.received) >= 10, "ten messages for each"
        )
        assert {incoming.topic for incoming in orders.received} == {b"order.created"}
        assert {incoming.topic for incoming in payments.received} == {b"payment.made"}
        assert len(orders.received) == len(payments.received) == 10

    async def test_a_unicast_message_reaches_exactly_one_instance_of_one_group(self) -> None:
        broker = await self.broker()
        members = [await self.connect(broker) for _ in range(4)]
        for member, group in zip(members, ["orders", "orders", "billing", "billing"], strict=True):
            await member.connection.subscribe(group, ["order.created"])
        publisher = await self.connect(broker)
        sent = [b"order %d" % i for i in range(40)]
        for body in sent:
            publisher.connection.publish_nowait("order.created", body, UNICAST_CODE)
        await self.wait_until(lambda: sum(len(m.received) for m in members) >= 40, "all 40 messages")
        received = [body for member in members for body in member.bodies]
        assert sorted(received) == sorted(sent)
        assert members[0].received or members[1].received, "the orders group got nothing"
        assert members[2].received or members[3].received, "the billing group got nothing"

    async def test_a_multicast_message_reaches_one_member_of_every_group(self) -> None:
        broker = await self.broker()
        members = [await self.connect(broker) for _ in range(4)]
        for member, group in zip(members, ["orders", "orders", "billing", "billing"], strict=True):
            await member.connection.subscribe(group, ["order.created"])
        publisher = await self.connect(broker)
        sent = [b"event %d" % i for i in range(20)]
        for body in sent:
            publisher.connection.publish_nowait("order.created", body, MULTICAST_CODE)

        def both_groups_got_all() -> bool:
            return len(members[0].received) + len(members[1].received) >= 20 and (
                len(members[2].received) + len(members[3].received) >= 20
            )

        await self.wait_until(both_groups_got_all, "20 events in each group")
        assert sorted(members[0].bodies + members[1].bodies) == sorted(sent)
        assert sorted(members[2].bodies + members[3].bodies) == sorted(sent)

    async def test_a_request_gets_its_reply_on_a_private_transient_topic(self) -> None:
        broker = await self.broker()

        def answer(peer: Peer, incoming: Incoming) -> None:
            reply_topic, _, question = incoming.body.partition(b"|")
            peer.connection.publish_nowait(reply_topic.decode(), question + b" found", UNICAST_CODE)

        server = await self.connect(broker, then=answer)
        await server.connection.subscribe("orders", ["order.get"])
        client = await self.connect(broker)
        reply_topic = f"reply.{uuid.uuid4().hex}"
        await client.connection.subscribe(reply_topic, [reply_topic], transient=True)
        await client.connection.publish("order.get", reply_topic.encode() + b"|order 7", UNICAST_CODE)
        await self.wait_until(lambda: len(client.received) == 1, "the reply")
        assert (client.received[0].topic, client.received[0].body) == (reply_topic.encode(), b"order 7 found")

    async def test_a_reply_published_with_its_requests_acknowledgement_acknowledges_it_once_accepted(
        self,
    ) -> None:
        broker = await self.broker()
        settled: list[BaseException | None] = []

        def settle(error: BaseException | None) -> None:
            settled.append(error)
            self._check_waiters()

        def answer(peer: Peer, incoming: Incoming) -> None:  # as a dispatcher: no ack of its own
            reply_topic, _, question = incoming.body.partition(b"|")
            peer.connection.publish_settled(
                reply_topic.decode(), question + b" found", UNICAST_CODE, settle, incoming.tag
            )

        # A window of one: the second request comes only once the first one's reply acknowledged it.
        server = await self.connect(broker, auto_ack=False, window=1, then=answer)
        await server.connection.subscribe("orders", ["order.get"])
        client = await self.connect(broker)
        reply_topic = f"reply.{uuid.uuid4().hex}"
        await client.connection.subscribe(reply_topic, [reply_topic], transient=True)
        for order in (b"order 7", b"order 8"):
            client.connection.publish_nowait("order.get", reply_topic.encode() + b"|" + order, UNICAST_CODE)
        await self.wait_until(lambda: len(client.received) == 2, "both replies")
        assert client.bodies == [b"order 7 found", b"order 8 found"]
        await self.wait_until(lambda: len(settled) == 2, "both replies to be settled")
        assert settled == [None, None]
        # Acknowledged, so not given back when the server leaves: the next member gets only what is new.
        other = await self.connect(broker)
        await other.connection.subscribe("orders", ["order.get"])
        await server.connection.close()
        await client.connection.publish("order.get", b"nobody|marker", UNICAST_CODE)
        await self.wait_until(lambda: len(other.received) >= 1, "the marker")
        assert other.bodies == [b"nobody|marker"]

    async def test_messages_of_one_publisher_arrive_in_order_through_a_small_window(self) -> None:
        broker = await self.broker()
        subscriber = await self.connect(broker, window=7)
        await subscriber.connection.subscribe("audit", ["order.created"])
        publisher = await self.connect(broker)
        sent = [b"order %d" % i for i in range(300)]
        accepted = [publisher.connection.publish_nowait("order.created", body, UNICAST_CODE) for body in sent]
        await asyncio.wait_for(asyncio.gather(*accepted), self.timeout)
        await self.wait_until(lambda: len(subscriber.received) >= 300, "all 300 messages")
        assert subscriber.bodies == sent

    async def test_what_a_dead_member_did_not_acknowledge_reaches_another_member_flagged(self) -> None:
        broker = await self.broker()
        doomed = await self.connect(broker, auto_ack=False)
        await doomed.connection.subscribe("orders", ["order.created"])
        publisher = await self.connect(broker)
        sent = [b"order %d" % i for i in range(5)]
        for body in sent:
            await publisher.connection.publish("order.created", body, UNICAST_CODE)
        await self.wait_until(lambda: len(doomed.received) == 5, "the first member to hold all five")
        survivor = await self.connect(broker)
        await survivor.connection.subscribe("orders", ["order.created"])
        await self.kill(doomed.connection)
        await self.wait_until(lambda: len(survivor.received) >= 5, "the redelivery to the other member")
        assert survivor.bodies == sent
        assert all(incoming.redelivered for incoming in survivor.received)

    async def test_a_late_member_gets_what_was_published_while_its_group_had_none(self) -> None:
        broker = await self.broker()
        first = await self.connect(broker)
        await first.connection.subscribe("orders", ["order.created"])
        await first.connection.close()
        publisher = await self.connect(broker)
        sent = [b"order %d" % i for i in range(3)]
        for body in sent:
            await publisher.connection.publish("order.created", body, UNICAST_CODE)
        late = await self.connect(broker)
        await late.connection.subscribe("orders", ["order.created"])
        await self.wait_until(lambda: len(late.received) >= 3, "the late member to get all three")
        assert late.bodies == sent

    async def test_a_full_broker_holds_the_publisher_back_until_the_consumer_acknowledges(self) -> None:
        broker = await self.broker(max_messages=3)
        consumer = await self.connect(broker, auto_ack=False)
        await consumer.connection.subscribe("orders", ["order.created"])
        publisher = await self.connect(broker, max_in_flight=1)
        for i in range(3):
            await publisher.connection.publish("order.created", b"order %d" % i, UNICAST_CODE)
        await self.wait_until(lambda: len(consumer.received) == 3, "the consumer to hold three")
        held = asyncio.ensure_future(publisher.connection.publish("order.created", b"order 3", UNICAST_CODE))
        done, _ = await asyncio.wait({held}, timeout=self.hold_back)
        assert not done, "a broker bounded to 3 messages accepted a 4th"
        assert not publisher.connection.writable
        with pytest.raises(BrokerFullError):
            publisher.connection.publish_nowait("order.created", b"order 4", UNICAST_CODE)
        consumer.connection.ack([consumer.received[0].tag])
        await asyncio.wait_for(held, self.timeout)
        await self.wait_until(lambda: len(consumer.received) == 4, "the held-back message")
        assert consumer.bodies[3] == b"order 3"

    async def test_closing_is_idempotent_refuses_publishing_and_gives_back_the_unacknowledged(self) -> None:
        broker = await self.broker()
        leaving = await self.connect(broker, auto_ack=False)
        await leaving.connection.subscribe("orders", ["order.created"])
        publisher = await self.connect(broker)
        for i in range(2):
            await publisher.connection.publish("order.created", b"order %d" % i, UNICAST_CODE)
        await self.wait_until(lambda: len(leaving.received) == 2, "the leaving member to hold two")
        staying = await self.connect(broker)
        await staying.connection.subscribe("orders", ["order.created"])
        await leaving.connection.close()
        await leaving.connection.close()
        with pytest.raises(ConnectionClosedError):
            await leaving.connection.publish("order.created", b"too late", UNICAST_CODE)
        with pytest.raises(ConnectionClosedError):
            leaving.connection.publish_nowait("order.created", b"too late", UNICAST_CODE)
        assert not leaving.connection.writable
        await self.wait_until(lambda: len(staying.received) >= 2, "the other member to get both back")
        assert staying.bodies == [b"order 0", b"order 1"]
        assert all(incoming.redelivered for incoming in staying.received)
