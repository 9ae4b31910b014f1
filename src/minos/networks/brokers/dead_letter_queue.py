"""Dead letters: what a message that failed all its attempts becomes, and the queue to list and replay them.

When a handler has failed ``retries.max_attempts`` times (see ``DispatchSink``), the message is published,
``UNICAST``, to the dead-letter topic (``<group>.dead-letters`` by default) as a message whose content is::

    {"topic": str, "identifier": UUID, "error": str, "attempts": int, "failed_at": datetime (aware),
     "message": bytes}

where ``message`` is the original frame body exactly as it was delivered, so a replay republishes the very
same message (same identifier, content, headers, reply topic and strategy).

The broker keeps dead letters like any other message: in the queue of the group that subscribes to the
dead-letter topic (``DeadLetterQueue`` uses the topic's own name as its group), and before anyone has
subscribed, as unclaimed messages of the topic that go to the first group subscribing. They last as long
as the broker process (the broker holds messages in memory).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from minos.common import ConfigSource, as_config

from ..exceptions import FrameDecodeError, MinosNetworkException
from ..protocol import BrokerMessage, BrokerMessageV1, BrokerMessageV1Payload, FrameCodec
from ..transports import Incoming
from .config import BrokerSettings, broker_settings
from .peer import ConnectionFactory, PeerHandle, Subscription
from .publisher import strategy_code
from .service import PeerService

__all__ = ["DeadLetter", "DeadLetterFormatError", "DeadLetterQueue"]

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 1.0
"""Seconds ``list`` and ``replay`` wait for one more dead letter before concluding the queue is exhausted."""


class DeadLetterFormatError(MinosNetworkException, ValueError):
    """A message on a dead-letter topic does not have the content of a dead letter."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message whose handler failed every attempt, with why and when.

    Attributes:
        topic: The original message's topic.
        identifier: The original message's identifier.
        error: The error the last attempt's 500 reply carried (no traceback).
        attempts: How many times the handler was run.
        failed_at: When the last attempt failed (timezone-aware).
        message: The original message's frame body, exactly as delivered.
    """

    topic: str
    identifier: UUID
    error: str
    attempts: int
    failed_at: datetime
    message: bytes

    def to_message(self, topic: str) -> BrokerMessageV1:
        """The message that carries this dead letter to ``topic`` (the dead-letter topic)."""
        content = {
            "topic": self.topic,
            "identifier": self.identifier,
            "error": self.error,
            "attempts": self.attempts,
            "failed_at": self.failed_at,
            "message": self.message,
        }
        return BrokerMessageV1(topic, BrokerMessageV1Payload(content))

    @classmethod
    def from_message(cls, message: BrokerMessage) -> Self:
        """Parse a message received on a dead-letter topic.

        Raises:
            DeadLetterFormatError: The content is not a dead letter; the message says which field is wrong.
        """
        content: Any = message.payload.content
        if not isinstance(content, dict):
            raise DeadLetterFormatError(
                f"message {message.identifier} on {message.topic!r} is not a dead letter: its content is "
                f"{type(content).__name__}, not a dict"
            )
        expected: dict[str, type] = {
            "topic": str,
            "identifier": UUID,
            "error": str,
            "attempts": int,
            "failed_at": datetime,
            "message": bytes,
        }
        for key, kind in expected.items():
            value = content.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise DeadLetterFormatError(
                    f"message {message.identifier} on {message.topic!r} is not a dead letter: {key!r} should be "
                    f"{kind.__name__}, got {value!r:.80}"
                )
        return cls(
            topic=content["topic"],
            identifier=content["identifier"],
            error=content["error"],
            attempts=content["attempts"],
            failed_at=content["failed_at"],
            message=content["message"],
        )

    def original(self) -> BrokerMessageV1:
        """The original message, decoded from ``message``.

        Raises:
            FrameDecodeError: ``message`` is not a valid frame body.
        """
        return FrameCodec().decode((self.topic.encode(), self.message))

    def describe(self) -> str:
        """One line: identifier, topic, attempts, when, error (tab-separated)."""
        return (
            f"{self.identifier}\t{self.topic}\tattempts={self.attempts}\t"
            f"failed_at={self.failed_at.isoformat()}\terror={self.error}"
        )


class DeadLetterQueue:
    """Lists and replays the dead letters queued on a dead-letter topic.

    Each call joins the group named after the topic, takes what the broker delivers until nothing more
    arrives for ``idle_timeout`` seconds (or enough has arrived), then leaves. Semantics:

    - ``list`` acknowledges nothing: when it leaves, the broker puts every dead letter it saw back at the
      front of the queue, in order. Listing never loses or consumes a dead letter. It sees at most
      ``window`` of them (the broker hands a peer no more than its window unacknowledged).
    - ``replay`` republishes each selected dead letter's original message, exactly, to its original topic,
      and acknowledges (removes) the dead letter only once the broker has accepted the republished
      message. A crash in between means the dead letter stays and a later replay sends it again
      (at-least-once); dead letters not selected are left queued.

    Only one ``list`` or ``replay`` should run at a time on a topic: dead letters held by one are invisible
    to another until it leaves.

    Args:
        connect: Builds the connection to the broker.
        topic: The dead-letter topic.
        name: Names the actor and its threads.
        window: The most dead letters held at once (and so the most ``list`` returns).
        idle_timeout: Seconds without a new dead letter after which the queue is taken as exhausted.
        close_timeout: Seconds the connection gets to hand acknowledgements over at the end.
    """

    def __init__(
        self,
        *,
        connect: ConnectionFactory,
        topic: str,
        name: str = "dead-letters",
        window: int = 1000,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        close_timeout: float = 5.0,
    ) -> None:
        if window < 1 or idle_timeout <= 0:
            raise ValueError(
                f"window must be at least 1 and idle_timeout positive, got {window!r}, {idle_timeout!r}"
            )
        self.topic = topic
        self.name = name
        self.window = window
        self.idle_timeout = idle_timeout
        self._connect = connect
        self._close_timeout = close_timeout

    @classmethod
    def from_config(
        cls,
        config: ConfigSource,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        settings: BrokerSettings | None = None,
    ) -> Self:
        """The dead-letter queue of the service ``config`` describes (``interfaces.broker.dead_letter_topic``).

        ``settings`` are ``config``'s broker settings when the caller has read them already (the command
        line reads them once); they are read from ``config`` otherwise.
        """
        config = as_config(config)
        settings = broker_settings(config) if settings is None else settings
        return cls(
            connect=settings.connection_factory(),
            topic=settings.dead_letter_topic,
            name=f"{config.name}-dead-letters",
            window=settings.window,
            idle_timeout=idle_timeout,
            close_timeout=settings.close_timeout,
        )

    async def list(self, limit: int | None = None) -> list[DeadLetter]:
        """The queued dead letters, oldest first, leaving them all queued.

        Args:
            limit: Return as soon as this many have arrived (and hold no more than that).

        Raises:
            BrokerUnavailableError: The broker could not be reached.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        letters: list[DeadLetter] = []
        window = min(limit, self.window) if limit is not None else self.window
        async with _Session(self, window) as session:
            while limit is None or len(letters) < limit:
                received = await session.next()
                if received is None:
                    break
                letter = received[1]
                if letter is not None:
                    letters.append(letter)
        return letters

    async def replay(self, identifiers: Iterable[UUID] | None = None) -> int:
        """Republish dead letters' original messages to their topics, then remove those dead letters.

        Args:
            identifiers: The original messages' identifiers to replay; None replays every dead letter.

        Returns:
            How many dead letters were replayed.

        Raises:
            BrokerUnavailableError: The broker could not be reached.
            ConnectionClosedError: The connection closed before the broker accepted a republished message
                (that dead letter stays queued).
        """
        wanted = None if identifiers is None else set(identifiers)
        if wanted is not None and not wanted:
            return 0
        replayed = 0
        remaining = set(wanted) if wanted is not None else None
        async with _Session(self, self.window) as session:
            while remaining is None or remaining:
                received = await session.next()
                if received is None:
                    break
                tag, letter = received
                if letter is None or (remaining is not None and letter.identifier not in remaining):
                    continue
                try:
                    original = letter.original()
                except FrameDecodeError as error:
                    logger.error("%s: cannot replay dead letter %s: %s", self.name, letter.identifier, error)
                    continue
                await session.publish(letter.topic, letter.message, strategy_code(original))
                session.ack(tag)
                replayed += 1
                if remaining is not None:
                    remaining.discard(letter.identifier)
        return replayed


class _Session:
    """One visit to the dead-letter topic: a PeerActor subscribed to it, its deliveries brought to this loop."""

    def __init__(self, queue: DeadLetterQueue, window: int) -> None:
        self._queue = queue
        self._codec = FrameCodec()
        self._loop = asyncio.get_running_loop()
        self._received: asyncio.Queue[Incoming] = asyncio.Queue()
        self._service = PeerService(
            queue.name,
            connect=queue._connect,
            subscriptions=(Subscription(queue.topic, (queue.topic,)),),
            sink=self._sink,
            window=window,
            close_timeout=queue._close_timeout,
        )

    def _sink(self, handle: PeerHandle) -> _Forward:
        return _Forward(self._loop, self._received)

    async def __aenter__(self) -> Self:
        await self._service.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._service.stop()

    async def next(self) -> tuple[int, DeadLetter | None] | None:
        """The next delivery's tag and dead letter (None if malformed); None once idle for the timeout."""
        try:
            incoming = await asyncio.wait_for(self._received.get(), self._queue.idle_timeout)
        except TimeoutError:
            return None
        try:
            letter = DeadLetter.from_message(self._codec.decode((incoming.topic, incoming.body)))
        except (FrameDecodeError, DeadLetterFormatError) as error:  # left queued for a person to look at
            logger.warning(
                "%s: skipped a malformed dead letter on %r: %s", self._queue.name, self._queue.topic, error
            )
            return incoming.tag, None
        return incoming.tag, letter

    async def publish(self, topic: str, body: bytes, strategy: int) -> None:
        """Publish and return once the broker has accepted it."""
        accepted: asyncio.Future[None] = self._loop.create_future()

        def settle(error: BaseException | None) -> None:  # in the actor's loop
            self._loop.call_soon_threadsafe(_settle, accepted, error)

        self._service.handle.publish(topic, body, strategy, settle)
        await accepted

    def ack(self, tag: int) -> None:
        """Remove a dead letter from the queue."""
        self._service.handle.ack(tag)


class _Forward:
    """The session's sink: hands each delivery to the caller's loop; acknowledges nothing itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop, received: asyncio.Queue[Incoming]) -> None:
        self._loop = loop
        self._received = received

    def __call__(self, incoming: Incoming) -> None:
        self._loop.call_soon_threadsafe(self._received.put_nowait, incoming)

    async def drain(self, timeout: float) -> None:
        """Nothing runs here: what was not acknowledged goes back to the broker when the connection closes."""


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
