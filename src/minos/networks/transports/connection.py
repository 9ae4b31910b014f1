"""The link between one peer and a broker, as every transport offers it (ZeroMQ, in-memory)."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from ..exceptions import MinosNetworkException

__all__ = [
    "BrokerFullError",
    "BrokerUnavailableError",
    "Connection",
    "ConnectionClosedError",
    "DeliveryHandler",
    "Incoming",
    "RoomWaiters",
    "Settle",
    "Strategy",
    "check_open",
]

logger = logging.getLogger(__name__)

Strategy = int
"""The strategy code on the wire: 0 unicast, 1 multicast (``protocol.frames.UNICAST_CODE`` and ``MULTICAST_CODE``)."""


class BrokerFullError(MinosNetworkException):
    """A publish that was asked not to wait found no room: the publish window or the broker is full."""


class BrokerUnavailableError(MinosNetworkException, ConnectionError):
    """The broker could not be reached: it did not answer in time, or refused this client (CURVE keys)."""


class ConnectionClosedError(MinosNetworkException, ConnectionError):
    """The connection was closed, so it can no longer publish, subscribe or acknowledge."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message the broker delivered to this peer; acknowledge it by ``tag`` once it is handled."""

    tag: int
    topic: bytes
    body: bytes
    redelivered: bool


Settle = Callable[[BaseException | None], None]
"""Told, in the connection's loop, how a publish ended: None once the broker accepted it, else the error."""

DeliveryHandler = Callable[[Incoming], None]
"""Called in the connection's event loop for each delivery, in the order the broker sent them."""

DEFAULT_OPEN_TIMEOUT = 5.0
"""Seconds a connection's ``open`` waits for the broker, unless the transport says otherwise."""

MAX_TOPIC_BYTES = 0xFFFF
"""The longest topic, in UTF-8 bytes, any transport takes (the ZeroMQ wire gives it two bytes)."""


def check_message(topic: str, strategy: Strategy) -> bytes:
    """Return ``topic`` in UTF-8 once it and ``strategy`` are known to be valid; for the transports.

    Raises:
        ValueError: when the topic is empty or too long, or the strategy is neither 0 nor 1.
    """
    encoded = topic.encode()
    if not encoded or len(encoded) > MAX_TOPIC_BYTES or strategy not in (0, 1):
        raise ValueError(
            f"a message needs a topic of 1 to {MAX_TOPIC_BYTES} UTF-8 bytes and strategy 0 or 1, got "
            f"{topic!r} and {strategy!r}"
        )
    return encoded


def check_open(connection: Connection, state: str, what: str) -> None:
    """Refuse ``what`` unless ``connection`` is in the ``open`` state; for the transports.

    Raises:
        ConnectionClosedError: naming the state, and what to do (open it, or make a new one).
    """
    if state != "open":
        hint = "await open() first" if state == "new" else "make a new connection"
        raise ConnectionClosedError(f"cannot {what} on {connection!r}: it is {state}; {hint}")


class RoomWaiters:
    """Publishers waiting for room among a bounded number of pending publishes, woken in arrival order.

    Used in one event loop (the connection's): ``wait`` until the caller's ``full`` turns false, ``wake``
    as many as there is room for, ``fail`` them all at close.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self, full: Callable[[], bool], check: Callable[[], None]) -> None:
        """Return once ``full()`` is false; ``check`` runs after each wake-up and raises to stop waiting."""
        while full():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            check()

    def wake(self, room: int) -> None:
        """Wake up to ``room`` waiters, the longest waiting first."""
        waiters = self._waiters
        while room > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    def fail(self, error: BaseException) -> None:
        """Fail every waiter with ``error``."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()


def check_subscription(connection: Connection, group: str, topics: Sequence[str]) -> None:
    """Check what ``subscribe`` was given; for the transports.

    Raises:
        ValueError: when ``connection`` has no ``on_delivery``, or the group or a topic is empty.
    """
    if connection.on_delivery is None:
        raise ValueError(
            f"{connection!r} has no on_delivery handler; set one before subscribing to {topics!r}"
        )
    if not group or not topics or not all(topics):
        raise ValueError(f"subscribe needs a group and topics, all non-empty; got {group!r} and {topics!r}")


class Connection(ABC):
    """One peer's link to a broker.

    A connection belongs to one event loop (its actor's loop thread): every method is called from that
    loop, and ``on_delivery`` runs in it. Delivery is at least once: what this peer does not acknowledge
    before it closes or goes silent is delivered again, to it or to another member of its group.

    Args:
        on_delivery: Receives each delivered message; set before the first ``subscribe``.
        window: How many deliveries this peer may hold unacknowledged (the broker's credit for it).
    """

    def __init__(self, *, on_delivery: DeliveryHandler | None = None, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window!r}")
        self.on_delivery = on_delivery
        self.window = window

    @property
    def connected(self) -> bool:
        """Whether the broker is reachable right now (False while reconnecting); for health checks."""
        return True

    @property
    def open_timeout(self) -> float:
        """Seconds ``open`` takes at most before it gives up with ``BrokerUnavailableError``.

        Whoever waits for an ``open`` (an actor's start) waits longer than this, so the connection's own
        error, which names the endpoint, is the one that reaches the caller. A transport whose ``open``
        may take longer than this default overrides it.
        """
        return DEFAULT_OPEN_TIMEOUT

    @abstractmethod
    async def open(self) -> None:
        """Connect and shake hands with the broker.

        Raises:
            BrokerUnavailableError: when the broker does not answer within the connection's timeout.
        """

    @abstractmethod
    async def subscribe(self, group: str, topics: Sequence[str], *, transient: bool = False) -> None:
        """Join ``group`` for ``topics``; returns once the broker has registered it.

        From then on the group's queue keeps what is published for these topics, even while no member
        is connected. A ``transient`` group is forgotten with its last member (private reply topics).
        """

    @abstractmethod
    async def publish(self, topic: str, body: bytes, strategy: Strategy) -> None:
        """Send a message body (``protocol.frames``) and return once the broker has accepted it.

        Waits while the publish window or the broker is full: a producer that outruns its consumers is
        slowed down, never dropped.

        Raises:
            ConnectionClosedError: when the connection closes before the broker accepted the message.
        """

    @abstractmethod
    def publish_nowait(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        """Queue a message for sending without waiting for room.

        Returns:
            A future (of the connection's loop) that resolves once the broker accepted the message, or
            fails with ConnectionClosedError if the connection closes first. A message the broker
            refuses for lack of room stays queued and is retried; the future resolves when it is in.

        Raises:
            BrokerFullError: when the publish window is full (``writable`` is False); nothing was queued.
        """

    def publish_settled(
        self, topic: str, body: bytes, strategy: Strategy, settle: Settle, ack: int | None = None
    ) -> None:
        """Queue a message as ``publish_nowait`` does, and tell ``settle`` how it ended instead of returning a future.

        With ``ack``, the delivery of that tag is acknowledged once the broker accepted this message, and
        only then (a dispatcher's reply and the request it answers): before ``settle(None)`` is told. A
        transport may send the two together (ZeroMQ does: one frame, applied by the broker as it accepts
        the reply); here the acknowledgement follows the acceptance.

        Here ``settle`` runs from the future's done callback, a loop turn after the outcome is known; a
        transport may call it in the very turn it learns the outcome.

        Raises:
            BrokerFullError, ValueError, ConnectionClosedError: As ``publish_nowait``; ``settle`` is
                then not called, and ``ack`` not sent.
        """
        future = self.publish_nowait(topic, body, strategy)
        future.add_done_callback(partial(_settle_from, settle if ack is None else self._acking(ack, settle)))

    def _acking(self, tag: int, settle: Settle) -> Settle:
        """``settle``, acknowledging ``tag`` first when the publish was accepted."""

        def settled(error: BaseException | None) -> None:
            if error is None:
                try:
                    self.ack((tag,))
                except ConnectionClosedError as closed:  # the message accepted, the delivery given back
                    logger.info("%s; the broker delivers it again", closed)
            settle(error)

        return settled

    @property
    @abstractmethod
    def writable(self) -> bool:
        """Whether ``publish_nowait`` would queue a message now (the publish window has room)."""

    @abstractmethod
    async def wait_writable(self) -> None:
        """Return once the publish window has room (at once if it has).

        Raises:
            ConnectionClosedError: when the connection closes while waiting.
        """

    @abstractmethod
    def ack(self, tags: Iterable[int]) -> None:
        """Acknowledge handled deliveries; sent in batches, soon."""

    @abstractmethod
    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for accepted-pending publishes and acknowledgements to go out, then close.

        What this peer received but did not acknowledge goes back to its group at the broker.
        Idempotent.
        """


def _settle_from(settle: Settle, future: asyncio.Future[None]) -> None:
    if future.cancelled():
        settle(ConnectionClosedError("the connection closed before the broker accepted the message"))
    else:
        settle(future.exception())
