"""PeerActor, the actor whose event loop owns one broker connection, and PeerHandle, how other threads reach it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..actors import ActorContext, BorrowedLoop, LoopActor
from ..transports import Connection, DeliveryHandler, Incoming
from ..transports.connection import Settle

__all__ = ["ConnectionFactory", "PeerActor", "PeerHandle", "Settle", "Sink", "SinkFactory", "Subscription"]

logger = logging.getLogger(__name__)

_SUBSCRIBE_TIMEOUT = 5.0  # seconds, beyond the connection's open_timeout, for the subscriptions at start


class ConnectionFactory(Protocol):
    """Builds an unopened connection to a broker, e.g. ``partial(ZmqConnection, "tcp://127.0.0.1:5555")``."""

    def __call__(self, *, on_delivery: DeliveryHandler | None, window: int) -> Connection: ...


class Sink(Protocol):
    """Takes the deliveries of one PeerActor incarnation, in its loop."""

    def __call__(self, incoming: Incoming) -> None: ...

    async def drain(self, timeout: float) -> None:
        """Stop taking new work and finish (or give up on) what is in hand within ``timeout`` seconds."""


SinkFactory = Callable[["PeerHandle"], Sink]
"""Builds the sink of a new PeerActor incarnation, in its loop (so after a restart the sink is fresh)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """A group's interest in some topics; ``transient`` groups vanish with their last member."""

    group: str
    topics: tuple[str, ...]
    transient: bool = False


@dataclass(slots=True)
class _Publish:
    topic: str
    body: bytes
    strategy: int
    settle: Settle
    ack: int | None


class PeerHandle:
    """The thread-safe side of a PeerActor: publish and acknowledge from any thread.

    Work handed over from other threads is queued and drained in batches by one pump task in the
    actor's loop, so a burst costs one wake-up, not one per message. The handle outlives restarts:
    what is queued while the actor restarts goes out through the next incarnation.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._publishes: deque[_Publish] = deque()
        self._acks: deque[int] = deque()
        self._lock = threading.Lock()  # guards _loop/_wakeup (re)binding against concurrent wake-ups
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop_thread = 0  # ident of the thread running the bound loop
        self._connection: Connection | None = None  # while the pump runs; touched on the loop thread only
        self._scheduled = False

    def __repr__(self) -> str:
        return f"<PeerHandle {self.name!r} {'bound' if self._loop is not None else 'unbound'}>"

    # Any thread ----------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether an incarnation of the actor runs and its connection reaches the broker (a snapshot)."""
        connection = self._connection
        return connection is not None and connection.connected

    def describe(self) -> str:
        """The broker this handle's connection reaches (its repr: servers, stream, state), for messages."""
        connection = self._connection
        return repr(connection) if connection is not None else f"the broker of {self.name!r} (not connected)"

    @property
    def queued(self) -> tuple[int, int]:
        """Publishes and acknowledgements queued for the actor's loop, not handed to the connection yet."""
        return len(self._publishes), len(self._acks)

    def publish(self, topic: str, body: bytes, strategy: int, settle: Settle, ack: int | None = None) -> None:
        """Queue a publish; ``settle`` is called in the actor's loop once the broker accepted or refused it.

        With ``ack``, that delivery is acknowledged once (and only if) the broker accepted this publish,
        before ``settle(None)``: a reply and the request it answers (see ``Connection.publish_settled``).
        """
        connection = self._direct()
        if connection is not None:  # on the actor's own loop, with nothing queued ahead: straight to it
            try:
                connection.publish_settled(topic, body, strategy, settle, ack)
            except Exception as error:
                settle(error)
            return
        self._publishes.append(_Publish(topic, body, strategy, settle, ack))
        self._wake()

    def publish_in_loop(self, topic: str, body: bytes, strategy: int) -> asyncio.Future[None] | None:
        """The fast path of ``publish`` for a caller on the actor's own loop (a publisher in the caller's loop).

        With nothing queued ahead and room in the connection's window, the message goes to the connection
        now and its acceptance future comes back, to await directly: no settle callback, no second future.

        Returns:
            The connection's acceptance future, or None when the fast path does not apply (then use
            ``publish``).

        Raises:
            Exception: What the connection's ``publish_nowait`` raises for a message it refuses outright.
        """
        connection = self._direct()
        return None if connection is None else connection.publish_nowait(topic, body, strategy)

    def _direct(self) -> Connection | None:
        """The connection, when a publish may go to it now: called on the actor's own loop, with nothing
        queued ahead of it and room in the connection's window; None otherwise."""
        connection = self._connection
        if (
            connection is None
            or self._publishes
            or threading.get_ident() != self._loop_thread
            or not connection.writable
        ):
            return None
        return connection

    def ack(self, tag: int) -> None:
        """Acknowledge a delivery: at once on the actor's own loop, else queued and sent in a batch."""
        connection = self._connection
        if connection is not None and threading.get_ident() == self._loop_thread:
            connection.ack((tag,))  # the connection batches acknowledgements itself
            return
        self._acks.append(tag)
        self._wake()

    def _wake(self) -> None:
        if self._scheduled:
            return
        with self._lock:
            if self._loop is None or self._wakeup is None or self._scheduled:
                return  # the next incarnation drains what is queued when it binds
            self._scheduled = True
            if threading.get_ident() == self._loop_thread:  # from the actor's own loop: no self-pipe write
                self._loop.call_soon(self._wakeup.set)
            else:
                self._loop.call_soon_threadsafe(self._wakeup.set)

    # The actor's loop ----------------------------------------------------------------------------------

    async def pump(self, connection: Connection) -> None:
        """Drain queued publishes and acknowledgements into ``connection`` until cancelled."""
        wakeup = asyncio.Event()
        with self._lock:
            self._loop, self._wakeup, self._scheduled = asyncio.get_running_loop(), wakeup, False
            self._loop_thread = threading.get_ident()
        self._connection = connection
        try:
            while True:
                self._scheduled = False  # before draining, so work queued from now on wakes us again
                await self.drain_into(connection)
                if self._publishes or self._acks:
                    continue
                await wakeup.wait()
                wakeup.clear()
        finally:
            self._connection = None
            with self._lock:
                self._loop = self._wakeup = None

    async def drain_into(self, connection: Connection) -> None:
        """Hand everything queued to ``connection`` now (waiting for room when its window is full)."""
        publishes, acks = self._publishes, self._acks
        if acks:
            tags = []
            while acks:
                tags.append(acks.popleft())
            connection.ack(tags)
        while publishes:
            if not connection.writable:
                await connection.wait_writable()
            item = publishes.popleft()
            try:
                connection.publish_settled(item.topic, item.body, item.strategy, item.settle, item.ack)
            except Exception as error:
                item.settle(error)


class PeerActor(LoopActor):
    """An actor whose loop thread owns one connection to a broker: publishers, subscribers, dispatchers.

    On start it opens the connection, joins its subscriptions and starts pumping what its handle
    queues; on stop it drains its sink (in-flight handlers finish within ``close_timeout``), then
    closes the connection, which hands what it did not acknowledge back to the broker.

    Each incarnation builds its connection when it is constructed, and its start timeout is the
    connection's ``open_timeout`` plus time to subscribe: the actor never gives up before the connection
    does, so a missing broker fails the start with the connection's ``BrokerUnavailableError``, which
    names the endpoint, rather than with a timeout of the actor.

    Args:
        context: Name, parent and dead letters (see ``Actor``).
        connect: Builds the connection.
        handle: The thread-safe handle the rest of the process uses to reach this actor.
        subscriptions: What to subscribe to once connected.
        sink: Builds the receiver of deliveries; None for a peer that only publishes.
        window: How many deliveries this peer may hold unacknowledged.
        close_timeout: Seconds the sink and the connection each get to finish at stop.
        borrow: Run in this loop (e.g. the caller's) instead of a loop thread of its own.
    """

    def __init__(
        self,
        context: ActorContext | None = None,
        *,
        connect: ConnectionFactory,
        handle: PeerHandle,
        subscriptions: Sequence[Subscription] = (),
        sink: SinkFactory | None = None,
        window: int = 1000,
        close_timeout: float = 5.0,
        borrow: BorrowedLoop | None = None,
    ) -> None:
        connection = connect(on_delivery=None, window=window)  # the sink comes in the loop, at start
        super().__init__(
            context,
            start_timeout=connection.open_timeout + max(_SUBSCRIBE_TIMEOUT, close_timeout),
            stop_timeout=2 * close_timeout + 1,
            borrow=borrow,
        )
        self.handle = handle
        self._subscriptions = tuple(subscriptions)
        self._sink_factory = sink
        self._close_timeout = close_timeout
        self._sink: Sink | None = None
        self._connection: Connection = connection
        self._opened = False
        self._pump: asyncio.Task[None] | None = None

    async def on_loop_start(self) -> None:
        self._sink = self._sink_factory(self.handle) if self._sink_factory is not None else None
        self._connection.on_delivery = self._sink
        self._opened = True
        try:
            await self._connection.open()
            for subscription in self._subscriptions:
                await self._connection.subscribe(
                    subscription.group, subscription.topics, transient=subscription.transient
                )
        except BaseException:
            await self._connection.close(0)
            raise
        self._pump = asyncio.get_running_loop().create_task(self.handle.pump(self._connection))

    async def on_loop_stop(self) -> None:
        if self._sink is not None:
            await self._sink.drain(self._close_timeout)
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        if self._opened:
            try:  # hand over what is still queued (the acks of the handlers drained above, above all)
                await asyncio.wait_for(self.handle.drain_into(self._connection), self._close_timeout)
            except TimeoutError:
                logger.warning(
                    "%s: the broker did not take all queued work within %s s", self, self._close_timeout
                )
            await self._connection.close(self._close_timeout)
