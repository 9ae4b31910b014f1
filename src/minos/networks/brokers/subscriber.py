"""BrokerSubscriber receives a group's messages through an actor of its own; InMemoryBrokerSubscriber replays a list."""

from __future__ import annotations

import asyncio
import logging
from abc import ABCMeta
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Self

from minos.common import ConfigSource, as_config

from ..actors import StartStop
from ..durable import OUTBOX_HEADER, ReceiptSender
from ..exceptions import FrameDecodeError
from ..protocol import BrokerMessage, BrokerMessageV1, FrameCodec
from ..protocol.frames import UNICAST_CODE
from ..transports import Incoming
from .config import BrokerSettings, broker_settings
from .duplicates import DuplicateFilter
from .peer import ConnectionFactory, PeerHandle, SinkFactory, Subscription
from .service import PeerService

__all__ = ["BrokerSubscriber", "InMemoryBrokerSubscriber", "decode_delivery", "publish_receipt"]

logger = logging.getLogger(__name__)


def decode_delivery(
    codec: FrameCodec,
    incoming: Incoming,
    handle: PeerHandle,
    duplicates: DuplicateFilter,
    receipts: ReceiptSender | None = None,
) -> BrokerMessageV1 | None:
    """Decode a delivery, or acknowledge and drop it when it is malformed or a duplicate.

    A malformed frame is logged with the reason (it can never be handled, so redelivering it would
    loop forever); a duplicate is dropped quietly, since at-least-once delivery makes them normal, and
    confirmed again to its outbox (through ``receipts``) if it came from one.
    """
    try:
        message = codec.decode((incoming.topic, incoming.body))
    except FrameDecodeError as error:
        logger.error("%s: dropped a malformed message on %r: %s", handle.name, incoming.topic, error)
        handle.ack(incoming.tag)
        return None
    if duplicates.check_and_remember(message.topic, message.identifier):
        handle.ack(incoming.tag)
        if receipts is not None:
            receipts.add(message)
        return None
    return message


def publish_receipt(handle: PeerHandle) -> Callable[[str, bytes], None]:
    """Publishes receipt bodies through ``handle``, fire and forget (a lost receipt means a resend)."""

    def publish(topic: str, body: bytes) -> None:
        handle.publish(topic, body, UNICAST_CODE, _ignore_outcome)

    return publish


def _ignore_outcome(error: BaseException | None) -> None:
    if error is not None:
        logger.debug("a receipt was not accepted by the broker: %s", error)


class _ReceiveSink:
    """Hands deliveries from the actor's loop to whoever awaits ``receive`` in another loop."""

    def __init__(self, handle: PeerHandle, subscriber: BrokerSubscriber) -> None:
        self._handle = handle
        self._subscriber = subscriber
        self._codec = FrameCodec()
        self._receipts = ReceiptSender(publish_receipt(handle))

    def __call__(self, incoming: Incoming) -> None:
        message = decode_delivery(
            self._codec, incoming, self._handle, self._subscriber.duplicates, self._receipts
        )
        if message is not None:
            self._subscriber._put(message, incoming.tag)

    async def drain(self, timeout: float) -> None:
        """Nothing runs here: what the receiver did not take goes back to the broker unacknowledged."""


class BrokerSubscriber(StartStop, metaclass=ABCMeta):
    """Receives the messages published to ``topics`` for ``group``; iterate it or await ``receive``.

    A message is acknowledged when ``receive`` hands it over, so what was delivered to this process but
    not yet received goes back to the broker if the subscriber stops or dies. Duplicates (same topic and
    identifier, within the filter's memory) are dropped.

    Args:
        topics: The topics to subscribe to.
        connect: Builds the connection to the broker.
        group: The group to join; members of a group share its messages.
        name: Names the actor and its threads.
        transient: The group vanishes with its last member (for private reply topics).
        window: How many messages may wait here unreceived (the broker holds the rest).
        duplicates: The duplicate filter; a fresh one by default.
        close_timeout: Seconds the connection gets to close at stop.
    """

    def __init__(
        self,
        topics: Iterable[str],
        *,
        connect: ConnectionFactory,
        group: str,
        name: str = "subscriber",
        transient: bool = False,
        window: int = 1000,
        duplicates: DuplicateFilter | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        ordered = tuple(dict.fromkeys(topics))
        if not ordered:
            raise ValueError("a subscriber needs at least one topic to subscribe to")
        self.topics = frozenset(ordered)  # a set, as in minos 0.7; the subscription keeps the order given
        self.group = group
        self.duplicates = duplicates if duplicates is not None else DuplicateFilter()
        self._connect = connect
        self._subscription = Subscription(group, ordered, transient)
        self._window = window
        self._close_timeout = close_timeout
        self.service = self._make_service(name, self._receive_sink, in_caller_loop=True)
        # Messages cross from the actor's loop to the receivers' loop: a deque, plus one wake-up
        # scheduled per batch (not per message) that wakes every waiting receiver.
        self._ready: deque[tuple[BrokerMessageV1, int]] = deque()
        self._receivers: list[asyncio.Future[None]] = []
        self._receivers_loop: asyncio.AbstractEventLoop | None = None
        self._notify_scheduled = False
        self._receipts: ReceiptSender | None = None  # used in the receivers' loop

    @classmethod
    def from_config(
        cls,
        config: ConfigSource,
        topics: Iterable[str],
        *,
        group: str | None = None,
        transient: bool = False,
        settings: BrokerSettings | None = None,
    ) -> Self:
        """Build a subscriber on the broker that ``interfaces.broker`` in ``config`` names.

        ``settings`` are ``config``'s broker settings when the caller has read them already (the
        composition root reads them once); they are read from ``config`` otherwise.
        """
        config = as_config(config)
        settings = broker_settings(config) if settings is None else settings
        return cls(
            topics,
            connect=settings.connection_factory(),
            group=group or settings.group,
            name=f"{config.name}-subscriber",
            transient=transient,
            window=settings.window,
            duplicates=DuplicateFilter(max_entries=settings.duplicate_entries, ttl=settings.duplicate_ttl),
            close_timeout=settings.close_timeout,
        )

    def _receive_sink(self, handle: PeerHandle) -> _ReceiveSink:
        return _ReceiveSink(handle, self)

    def deliver_to(self, sink: SinkFactory) -> None:
        """Send deliveries to ``sink`` (in the actor's loop) instead of to ``receive``.

        Raises:
            RuntimeError: The subscriber is running; call this before ``start``.
        """
        if self.service.running:
            raise RuntimeError(f"{self.service!r} is running; choose where deliveries go before start()")
        self.service = self._make_service(self.service.name, sink, in_caller_loop=False)

    def _make_service(self, name: str, sink: SinkFactory, *, in_caller_loop: bool) -> PeerService:
        # Received messages go to the caller's loop anyway: the actor runs there too, so they need no
        # thread hop. A sink of its own (a dispatcher's) runs in the actor's own loop thread instead.
        return PeerService(
            name,
            connect=self._connect,
            subscriptions=(self._subscription,),
            sink=sink,
            window=self._window,
            close_timeout=self._close_timeout,
            in_caller_loop=in_caller_loop,
        )

    async def start(self) -> None:
        """Connect and subscribe; from now on the group's messages are kept for it (idempotent).

        ``receive`` must then be awaited from the event loop that called ``start``.
        """
        self._receivers_loop = asyncio.get_running_loop()
        await self.service.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Disconnect; messages not yet received go back to the broker (idempotent)."""
        await self.service.stop(timeout)

    def __aiter__(self) -> AsyncIterator[BrokerMessage]:
        return self

    async def __anext__(self) -> BrokerMessage:
        return await self.receive()

    async def receive(self) -> BrokerMessage:
        """Wait for the next message and acknowledge it. Starts the subscriber if needed.

        Several coroutines may await ``receive`` at once; each message goes to one of them.
        """
        if not self.service.running:
            await self.start()
        while not self._ready:
            waiter = asyncio.get_running_loop().create_future()
            self._receivers.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
                try:
                    self._receivers.remove(waiter)
                except ValueError:
                    pass
        message, tag = self._ready.popleft()
        self.service.handle.ack(tag)
        if OUTBOX_HEADER in message.payload.headers:
            if self._receipts is None:
                self._receipts = ReceiptSender(publish_receipt(self.service.handle))
            self._receipts.add(message)
        if self._ready and self._receivers:  # more left: let the next receiver take one too
            _wake(self._receivers[0])
        return message

    def _put(self, message: BrokerMessageV1, tag: int) -> None:
        """Called in the actor's loop: queue a message and, once per batch, wake the receivers."""
        self._ready.append((message, tag))
        if self.service.in_caller_loop:
            # The actor runs in the receivers' loop: wake a waiting receiver now (its task runs in the
            # loop's next turn) rather than schedule a notification that wakes it a turn later.
            receivers = self._receivers
            if receivers and len(receivers) >= len(self._ready):
                _wake(receivers[len(self._ready) - 1])
            return
        if not self._notify_scheduled and self._receivers_loop is not None:
            self._notify_scheduled = True
            self._receivers_loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        """In the receivers' loop: wake as many waiting receivers as there are messages."""
        self._notify_scheduled = False  # first: a message queued from now on schedules another call
        for waiter in self._receivers[: len(self._ready)]:
            _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class InMemoryBrokerSubscriber(StartStop):
    """A subscriber for tests that yields the messages it was given, then waits forever.

    Args:
        topics: The topics it stands for (it receives only what it is given, whatever the topic).
        messages: The first messages to receive, in order.

    Raises:
        TypeError: ``topics`` holds something other than strings (minos 0.7's order is topics first).
    """

    def __init__(self, topics: Iterable[str] = (), messages: Iterable[BrokerMessage] = ()) -> None:
        self.topics = frozenset(topics)  # a set, as in minos 0.7
        for topic in self.topics:
            if not isinstance(topic, str):
                raise TypeError(
                    f"topics must be strings, got {topic!r}; the topics come first, then the messages: "
                    "InMemoryBrokerSubscriber(topics, messages), as in minos 0.7"
                )
        self._messages: asyncio.Queue[BrokerMessage] | None = None
        self._initial = list(messages)

    @classmethod
    def from_config(cls, config: ConfigSource, *, topics: Iterable[str] = ()) -> Self:
        """An empty one on ``topics``, as 0.7 built its twin from the config (the config is checked)."""
        as_config(config)
        return cls(topics=topics)

    def _queue(self) -> asyncio.Queue[BrokerMessage]:
        if self._messages is None:
            self._messages = asyncio.Queue()
            for message in self._initial:
                self._messages.put_nowait(message)
        return self._messages

    def add_message(self, message: BrokerMessage) -> None:
        """Make ``message`` the last one to be received."""
        self._queue().put_nowait(message)

    add = add_message

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self, timeout: float | None = None) -> None:
        """Nothing to stop."""

    def __aiter__(self) -> AsyncIterator[BrokerMessage]:
        return self

    async def __anext__(self) -> BrokerMessage:
        return await self.receive()

    async def receive(self) -> BrokerMessage:
        """The next message given to this subscriber."""
        return await self._queue().get()


# As in minos 0.7, the in-memory twin counts as one (``isinstance(x, BrokerSubscriber)``): it has the same life cycle and
# receive, iterate, so code typed against the real one takes it in tests.
BrokerSubscriber.register(InMemoryBrokerSubscriber)
