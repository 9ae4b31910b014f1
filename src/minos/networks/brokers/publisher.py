"""BrokerPublisher sends messages to the broker through an actor of its own; InMemoryBrokerPublisher records them."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Self

from minos.common import Config

from ..actors import StartStop
from ..protocol import BrokerMessage, BrokerMessageV1Strategy, FrameCodec
from ..transports import BrokerFullError
from ..transports.routing import MULTICAST
from .config import broker_settings, connection_factory
from .peer import ConnectionFactory, Settle
from .service import PeerService

__all__ = ["BrokerPublisher", "InMemoryBrokerPublisher", "strategy_code"]

UNICAST = 0


def strategy_code(message: BrokerMessage) -> int:
    """The strategy's code on the broker's wire."""
    return MULTICAST if message.strategy is BrokerMessageV1Strategy.MULTICAST else UNICAST


class BrokerPublisher(StartStop):
    """Sends messages to a broker; ``send`` returns once the broker has accepted the message.

    The connection lives in an actor's loop thread; ``send`` hands the encoded message over and awaits
    the broker's acceptance without blocking the caller's loop. At most ``max_in_flight`` sends wait
    for acceptance at once: more wait their turn (``send``) or are refused (``send_nowait``).

    Args:
        connect: Builds the connection to the broker.
        name: Names the actor and its threads.
        max_in_flight: How many messages may await the broker's acceptance at once.
        close_timeout: Seconds queued messages get to reach the broker at stop.
    """

    def __init__(
        self,
        connect: ConnectionFactory,
        *,
        name: str = "publisher",
        max_in_flight: int = 10_000,
        close_timeout: float = 5.0,
    ) -> None:
        self.service = PeerService(name, connect=connect, close_timeout=close_timeout)
        self.max_in_flight = max_in_flight
        self._codec = FrameCodec()
        self._slots: asyncio.Semaphore | None = None
        self._results: _Results | None = None

    @classmethod
    def from_config(cls, config: Config, *, name: str | None = None) -> Self:
        """Build a publisher for the broker that ``interfaces.broker`` in ``config`` names."""
        settings = broker_settings(config)
        return cls(
            connection_factory(config), name=name or f"{config.name}-publisher", **settings.publisher()
        )

    async def start(self) -> None:
        """Connect to the broker (idempotent)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
            self._results = _Results(asyncio.get_running_loop())
        await self.service.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Let accepted-pending messages reach the broker, then disconnect (idempotent)."""
        await self.service.stop(timeout)

    async def send(self, message: BrokerMessage) -> None:
        """Send ``message`` and return once the broker has accepted it, waiting while too many are in flight.

        The publisher starts on first use if it was not started. While the broker is unreachable the
        connection keeps reconnecting and ``send`` keeps waiting (bound it with ``asyncio.wait_for``);
        ``stop`` fails what is still waiting with ConnectionClosedError.

        Raises:
            FrameEncodeError: The content holds a type the wire cannot carry; nothing was sent.
            ConnectionClosedError: The publisher stopped before the broker accepted the message.
        """
        if self._slots is None or not self.service.running:
            await self.start()
        assert self._slots is not None
        frames = self._codec.encode(message)
        await self._slots.acquire()
        await self._hand_over(message, frames[1])

    async def send_nowait(self, message: BrokerMessage) -> None:
        """Like ``send``, but refuse at once when ``max_in_flight`` messages are already in flight.

        Raises:
            BrokerFullError: Too many messages are in flight; nothing was sent. Retry later.
        """
        if self._slots is None or not self.service.running:
            await self.start()
        assert self._slots is not None
        frames = self._codec.encode(message)
        if self._slots.locked():
            raise BrokerFullError(
                f"{self.max_in_flight} messages already await the broker; await send() to wait for room"
            )
        await self._slots.acquire()
        await self._hand_over(message, frames[1])

    async def _hand_over(self, message: BrokerMessage, body: bytes) -> None:
        assert self._slots is not None
        assert self._results is not None
        accepted = self._results.loop.create_future()
        try:
            self.service.handle.publish(
                message.topic, body, strategy_code(message), self._results.settler(accepted)
            )
            await accepted
        finally:
            self._slots.release()


class _Results:
    """Hands acceptances from the actor's loop back to the caller's loop, a batch per wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ready: deque[tuple[asyncio.Future[None], BaseException | None]] = deque()
        self._scheduled = False

    def settler(self, future: asyncio.Future[None]) -> Settle:
        def settle(error: BaseException | None) -> None:  # in the actor's loop
            self._ready.append((future, error))
            if not self._scheduled:
                self._scheduled = True
                self.loop.call_soon_threadsafe(self._resolve_all)

        return settle

    def _resolve_all(self) -> None:  # in the caller's loop
        self._scheduled = False  # first: a result queued from now on schedules another call
        ready = self._ready
        while ready:
            future, error = ready.popleft()
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class InMemoryBrokerPublisher(StartStop):
    """A publisher for tests that keeps what is sent in ``messages`` instead of sending it.

    Messages are still encoded, so content the wire cannot carry fails here as it would for real.
    """

    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []
        self._codec = FrameCodec()

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self, timeout: float | None = None) -> None:
        """Nothing to stop."""

    async def send(self, message: BrokerMessage) -> None:
        """Record ``message``."""
        self._codec.encode(message)
        self.messages.append(message)

    send_nowait = send
