"""The in-memory twin of the ZeroMQ transport: a broker and its connections inside one process, no sockets."""

from __future__ import annotations

import asyncio
import logging
import reprlib
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .connection import (
    BrokerFullError,
    Connection,
    ConnectionClosedError,
    DeliveryHandler,
    Incoming,
    RoomWaiters,
    Strategy,
    check_message,
    check_open,
    check_subscription,
)
from .routing import Delivery, RoutingStats, RoutingTable

__all__ = ["MemoryBroker", "MemoryConnection"]

logger = logging.getLogger(__name__)


class MemoryBroker:
    """A broker living in the process's memory, routing exactly like ``BrokerServer``.

    Its connections may live in different event loops and threads: the routing table sits behind a
    lock, and each delivery is handed to its connection's own loop.

    Args:
        max_messages: How many messages may be queued or in flight at once; beyond it publishers wait.
    """

    def __init__(self, *, max_messages: int = 1_000_000) -> None:
        self._table = RoutingTable(max_messages=max_messages)
        self._lock = threading.Lock()
        self._connections: dict[bytes, MemoryConnection] = {}
        self._waiting: dict[
            bytes, MemoryConnection
        ] = {}  # connections with publishes refused for lack of room

    def __repr__(self) -> str:
        return f"<MemoryBroker {len(self._connections)} peers, {self._table.size} messages>"

    @property
    def stats(self) -> RoutingStats:
        """A copy of the routing table's counters."""
        with self._lock:
            return replace(self._table.stats)

    @property
    def size(self) -> int:
        """How many messages are queued or in flight."""
        return self._table.size

    def peers(self) -> int:
        """How many connections are open on this broker."""
        with self._lock:
            return len(self._connections)

    # Called by MemoryConnection, from its loop --------------------------------------------------------

    def _attach(self, connection: MemoryConnection) -> bytes:
        peer = uuid.uuid4().bytes
        with self._lock:
            self._connections[peer] = connection
        return peer

    def _detach(self, peer: bytes) -> None:
        with self._lock:
            self._connections.pop(peer, None)
            self._waiting.pop(peer, None)
            self._table.peer_lost(peer)
            self._after_change(room_freed=True)

    def _subscribe(
        self, peer: bytes, group: bytes, topics: Sequence[bytes], window: int, transient: bool
    ) -> None:
        with self._lock:
            for topic in topics:
                self._table.subscribe(peer, group, topic, window=window, transient=transient)
            self._after_change(room_freed=False)

    def _publish(self, peer: bytes, messages: deque[_Publish]) -> None:
        """Publish from the left of ``messages`` until the table refuses one; settle the accepted ones."""
        with self._lock:
            accepted = 0
            while messages:
                message = messages[0]
                if not self._table.publish(message.topic, message.body, message.strategy):
                    connection = self._connections.get(peer)
                    if connection is not None:
                        self._waiting[peer] = connection
                    break
                messages.popleft()
                if not message.future.done():
                    message.future.set_result(None)
                accepted += 1
            if accepted:
                self._after_change(room_freed=False)

    def _ack(self, peer: bytes, tags: Iterable[int]) -> None:
        with self._lock:
            self._table.ack(peer, tags)
            self._after_change(room_freed=True)

    def _after_change(self, *, room_freed: bool) -> None:
        """Hand out what can be delivered now and wake publishers waiting for room; under the lock."""
        while True:
            deliveries = self._table.take_deliveries()
            if not deliveries:
                break
            by_peer: dict[bytes, list[Delivery]] = {}
            for delivery in deliveries:
                by_peer.setdefault(delivery.peer, []).append(delivery)
            gone = [peer for peer, batch in by_peer.items() if not self._connections[peer]._hand_over(batch)]
            if not gone:
                break
            for peer in gone:  # their loop is closed: they crashed without closing
                self._connections.pop(peer, None)
                self._waiting.pop(peer, None)
                self._table.peer_lost(peer)
            room_freed = True
        if room_freed and self._waiting and self._table.has_room():
            waiting, self._waiting = self._waiting, {}
            for connection in waiting.values():
                connection._schedule(connection._retry)


@dataclass(slots=True)
class _Publish:
    topic: bytes
    body: bytes
    strategy: int
    future: asyncio.Future[None]


class MemoryConnection(Connection):
    """A link to a ``MemoryBroker``, with the semantics of ``ZmqConnection`` and no I/O.

    Args:
        broker: The broker to join.
        on_delivery: Receives each delivered message; set before the first ``subscribe``.
        window: How many deliveries this peer may hold unacknowledged.
        max_in_flight: How many publishes may wait for room in the broker; beyond it ``publish``
            waits and ``publish_nowait`` raises ``BrokerFullError``.

    Raises:
        ValueError: when a number is out of range.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        *,
        on_delivery: DeliveryHandler | None = None,
        window: int = 1000,
        max_in_flight: int = 1000,
    ) -> None:
        super().__init__(on_delivery=on_delivery, window=window)
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight!r}")
        self.broker = broker
        self.max_in_flight = max_in_flight
        self._state = "new"  # new -> open -> closing -> closed
        self._peer = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_Publish] = deque()  # refused for lack of room, retried in order
        self._room = RoomWaiters()
        self._drained: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<MemoryConnection {self._peer.hex()[:8] or '-'} {self._state}>"

    async def open(self) -> None:
        if self._state != "new":
            raise ConnectionClosedError(f"{self!r} was opened before; make a new connection")
        self._loop = asyncio.get_running_loop()
        self._peer = self.broker._attach(self)
        self._state = "open"

    async def subscribe(self, group: str, topics: Sequence[str], *, transient: bool = False) -> None:
        self._check_open("subscribe")
        check_subscription(self, group, topics)
        self.broker._subscribe(
            self._peer, group.encode(), [t.encode() for t in topics], self.window, transient
        )

    async def publish(self, topic: str, body: bytes, strategy: Strategy) -> None:
        self._check_open("publish")
        check_message(topic, strategy)
        await self.wait_writable()
        await self.publish_nowait(topic, body, strategy)

    def publish_nowait(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        self._check_open("publish")
        encoded = check_message(topic, strategy)
        if len(self._pending) >= self.max_in_flight:
            raise BrokerFullError(
                f"{len(self._pending)} publishes of {self!r} wait for room in the broker, the max_in_flight "
                f"of {self.max_in_flight!r}; await wait_writable() or publish() to wait for room"
            )
        assert self._loop is not None
        message = _Publish(encoded, body, strategy, self._loop.create_future())
        self._pending.append(message)
        if len(self._pending) == 1:  # otherwise older ones wait for room: keep the order
            self.broker._publish(self._peer, self._pending)
        return message.future

    @property
    def connected(self) -> bool:
        return self._state == "open"

    @property
    def writable(self) -> bool:
        return self._state == "open" and len(self._pending) < self.max_in_flight

    async def wait_writable(self) -> None:
        self._check_open("publish")
        await self._room.wait(
            lambda: len(self._pending) >= self.max_in_flight, lambda: self._check_open("publish")
        )

    def ack(self, tags: Iterable[int]) -> None:
        if self._state != "open" and self._state != "closing":
            raise ConnectionClosedError(
                f"{self!r} cannot acknowledge {reprlib.repr(tags)}: it is not open; those messages go back to their group"
            )
        self.broker._ack(self._peer, tags)

    async def close(self, timeout: float = 5.0) -> None:
        if self._state == "new":
            self._state = "closed"
        if self._state == "closing":
            await self._closed.wait()
        if self._state != "open":
            return
        self._state = "closing"
        try:
            if self._pending:
                assert self._loop is not None
                self._drained = self._loop.create_future()
                try:
                    await asyncio.wait_for(self._drained, timeout)
                except TimeoutError:
                    pass
        finally:
            self._finish()

    async def abort(self) -> None:
        """Drop the link at once, as a crash would: pending publishes fail, unacknowledged deliveries go back."""
        if self._state in ("open", "closing"):
            self._finish()
        self._state = "closed"

    # Internals ------------------------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        check_open(self, self._state, what)

    def _finish(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        self._closed.set()
        self.broker._detach(self._peer)
        for message in self._pending:
            if not message.future.done():
                message.future.set_exception(
                    ConnectionClosedError(
                        f"{self!r} closed before the broker had room for the message to {message.topic!r}; "
                        "publish it again on an open connection"
                    )
                )
        self._pending.clear()
        self._room.fail(ConnectionClosedError(f"{self!r} closed; make a new connection"))

    def _schedule(self, callback: Callable[..., None], *args: object) -> bool:
        """Run ``callback(*args)`` in this connection's loop, soon; False when that loop is closed."""
        loop = self._loop
        assert loop is not None
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if running is loop:
                loop.call_soon(callback, *args)
            else:
                loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            return False
        return True

    def _hand_over(self, batch: list[Delivery]) -> bool:
        return self._schedule(self._deliver, batch)

    def _deliver(self, batch: list[Delivery]) -> None:
        if self._state == "closed":
            return  # the broker took these back when this connection closed
        deliver = self.on_delivery
        for delivery in batch:
            if deliver is None:
                logger.error("%r got a delivery on %r but has no on_delivery handler", self, delivery.topic)
                continue
            try:
                deliver(Incoming(delivery.tag, delivery.topic, delivery.body, delivery.redelivered))
            except Exception:
                logger.exception("on_delivery of %r failed on a message to %r", self, delivery.topic)

    def _retry(self) -> None:
        if self._state == "closed" or not self._pending:
            return
        self.broker._publish(self._peer, self._pending)
        self._room.wake(self.max_in_flight - len(self._pending))
        if not self._pending and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
