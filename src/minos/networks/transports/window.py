"""PublishWindow: a connection's publishes from ``publish_nowait`` until the broker accepts them.

Both networked transports keep their publishes here: ``ZmqConnection`` (a publish is one PUB record,
answered by PUBOK or PUBNO) and ``NatsConnection`` (one JetStream message, answered by its PubAck). What
goes on the wire and how answers are read stays in each connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from .connection import RoomWaiters, Settle

__all__ = ["Publish", "PublishWindow"]

logger = logging.getLogger(__name__)

_RETRY_FIRST: Final = 0.005  # seconds before refused publishes go again; doubles while the broker refuses
_RETRY_MAX: Final = 0.25

P = TypeVar("P", bound=Sized)


@dataclass(slots=True)
class Publish(Generic[P]):
    """One publish the broker has not accepted yet: what the connection sends for it (``payload``, whose
    ``len`` is its size on the wire), who learns how it ends (its ``future``, or else ``settle``, told at
    once: see ``add_settled``), the delivery the broker acknowledges when it accepts it (``ack``, for a
    transport that sends the two together), and whether it went on the current link without an answer yet."""

    sequence: int
    topic: str
    payload: P
    future: asyncio.Future[None] | None
    settle: Settle | None
    ack: int | None = None
    awaiting: bool = False  # sent on the current link, no answer yet
    sent_at: float = 0.0


class PublishWindow(Generic[P]):
    """The publishes the broker has not accepted yet, in sequence order, with a bound on how many.

    The API side adds publishes (``add``) and waits for room (``wait_room``). The link side takes what
    to send (``take``, then ``sent`` or ``unsend``), reports the broker's answers (``accepted``,
    ``refused``, ``failed``) and starts over on a new link (``restart``: everything unaccepted goes again,
    the same payload). Refused publishes go again after a backoff, in order, but only once every publish
    sent has its answer: a broker refuses every later publish of a peer after a refused one (a full
    ZeroMQ broker, see ``wire``; a full JetStream stream), so the refused ones are then exactly the tail
    of what was sent, and one publisher's messages keep their order. An answer to a publish that is not
    awaiting one (it was sent on an earlier link, and goes again) refuses nothing.

    Invariant: ``_unanswered`` is the number of publishes whose ``awaiting`` is true.

    Lives in one event loop; not thread-safe.

    Args:
        size: How many publishes may await acceptance at once.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {size!r}")
        self.size = size
        self.next_sequence = 1
        """The sequence number ``add`` gives the next publish (a connection puts it in the payload)."""
        self._pending: dict[int, Publish[P]] = {}  # by sequence, so in order
        self._unsent: deque[int] = deque()
        self._unanswered = 0
        self._refused: list[int] = []
        self._retry_at: float | None = None
        self._retry_delay = _RETRY_FIRST
        self._room = RoomWaiters()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make the futures of ``add`` in ``loop`` (the connection's), without looking it up per publish."""
        self._loop = loop

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def has_room(self) -> bool:
        """Whether ``add`` may be called now."""
        return len(self._pending) < self.size

    def get(self, sequence: int) -> Publish[P] | None:
        """The publish of ``sequence``, if it still awaits acceptance."""
        return self._pending.get(sequence)

    # The API side ---------------------------------------------------------------------------------------

    def add(self, topic: str, payload: P) -> asyncio.Future[None]:
        """Queue a publish numbered ``next_sequence`` (the caller checked ``has_room``); the future resolves
        once it is accepted."""
        # asyncio.get_running_loop() makes a getpid() system call on Python 3.11: not once per message.
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue(topic, payload, future, None)
        return future

    def add_settled(self, topic: str, payload: P, settle: Settle, ack: int | None = None) -> None:
        """Queue a publish as ``add`` does, but call ``settle`` as it ends instead of resolving a future.

        ``settle(None)`` runs inside ``accepted``, ``settle(error)`` inside ``failed`` or ``fail``: in the
        turn that learns the outcome, so what it queues goes out in that turn's flush. A ``settle`` that
        raises is logged; the window and the other publishes are not affected. ``ack`` rides with the
        publish (``Publish.ack``) for the link to send.
        """
        self._queue(topic, payload, None, settle, ack)

    def _queue(
        self,
        topic: str,
        payload: P,
        future: asyncio.Future[None] | None,
        settle: Settle | None,
        ack: int | None = None,
    ) -> None:
        sequence = self.next_sequence
        self.next_sequence = sequence + 1
        self._pending[sequence] = Publish(sequence, topic, payload, future, settle, ack)
        self._unsent.append(sequence)

    async def wait_room(self, check: Callable[[], None]) -> None:
        """Return once ``has_room``; ``check`` runs after each wake-up and raises to stop waiting."""
        await self._room.wait(lambda: len(self._pending) >= self.size, check)

    def fail(self, error: Callable[[str], BaseException]) -> None:
        """Fail every unaccepted publish with ``error(topic)`` and every room waiter with ``error("")``."""
        failed = list(self._pending.values())
        self._pending.clear()
        self._unsent.clear()
        self._refused.clear()
        self._unanswered = 0
        for publish in failed:  # once the window is consistent: a settle may publish again
            _end(publish, error(publish.topic))
        self._room.fail(error(""))

    def withdraw(self, sequence: int) -> None:
        """Drop a publish its sender gave up on before it went out, and wake who waits for room."""
        publish = self._pending.pop(sequence, None)
        if publish is not None:
            self._unanswered -= publish.awaiting
        self._room.wake(self.size - len(self._pending))

    def withdraw_cancelled(self) -> None:
        """Drop every publish whose future was cancelled (its sender gave up), and wake who waits for room."""
        pending = self._pending
        for sequence in [s for s, p in pending.items() if p.future is not None and p.future.cancelled()]:
            publish = pending.pop(sequence)
            self._unanswered -= publish.awaiting
        self._room.wake(self.size - len(pending))

    # The link side --------------------------------------------------------------------------------------

    def restart(self) -> None:
        """Forget what the last link sent: every unaccepted publish goes again, in order."""
        for publish in self._pending.values():
            publish.awaiting = False
        self._unsent = deque(self._pending)
        self._unanswered = 0
        self._refused.clear()
        self._retry_at = None

    @property
    def has_unsent(self) -> bool:
        """Whether publishes are queued to go, and none waits for its backoff in front of them."""
        return bool(self._unsent) and not self._refused

    def take(self, max_bytes: int) -> list[Publish[P]]:
        """The publishes to send now, in order: one, then more until their payloads reach ``max_bytes``;
        none while refused ones wait. Report each with ``sent`` once it went, or give it back (``unsend``)."""
        taken: list[Publish[P]] = []
        if self._refused:
            return taken
        unsent, pending = self._unsent, self._pending
        size = 0
        while unsent:
            publish = pending.get(unsent.popleft())
            if publish is not None:
                taken.append(publish)
                size += len(publish.payload)
                if size >= max_bytes:
                    break
        return taken

    def sent(self, publishes: Sequence[Publish[P]], now: float) -> None:
        """These went out on the current link at ``now``: their answers are due."""
        unanswered = self._unanswered
        for publish in publishes:
            if not publish.awaiting:
                publish.awaiting = True
                unanswered += 1
            publish.sent_at = now
        self._unanswered = unanswered

    def unsend(self, publishes: Sequence[Publish[P]]) -> None:
        """These could not go out: they wait in front of the unsent ones."""
        self._unsent.extendleft(reversed([publish.sequence for publish in publishes]))

    def accepted(self, sequences: Sequence[int]) -> None:
        """The broker accepted these: resolve their futures (or tell their settle) and wake who waits for room."""
        pending = self._pending
        answered = 0
        settled: list[Settle] = []
        for sequence in sequences:
            publish = pending.pop(sequence, None)
            if publish is not None:
                answered += publish.awaiting
                future = publish.future
                if future is not None:
                    if not future.done():
                        future.set_result(None)
                elif publish.settle is not None:
                    settled.append(publish.settle)
        self._unanswered -= answered
        self._retry_delay = _RETRY_FIRST
        self._room.wake(self.size - len(pending))
        for settle in settled:  # once the window is consistent: a settle may publish again
            _tell(settle, None)

    def refused(self, sequences: Sequence[int], now: float) -> float | None:
        """The broker had no room for these: send them again after a backoff.

        Returns:
            The delay of the backoff this refusal started, or None if one was under way already (or
            none of these awaited an answer).
        """
        pending, refused = self._pending, self._refused
        answered = 0
        for sequence in sequences:
            publish = pending.get(sequence)
            if publish is not None and publish.awaiting:
                publish.awaiting = False
                answered += 1
                refused.append(sequence)
        self._unanswered -= answered
        if not answered or self._retry_at is not None:
            return None
        delay = self._retry_delay
        self._retry_at = now + delay
        self._retry_delay = min(_RETRY_MAX, 2 * delay)
        return delay

    def failed(self, sequence: int, error: BaseException) -> None:
        """The broker refused this one for good: fail its future (or tell its settle) with ``error``, wake
        who waits for room."""
        publish = self._pending.pop(sequence, None)
        if publish is None:
            return
        self._unanswered -= publish.awaiting
        _end(publish, error)
        self._room.wake(self.size - len(self._pending))

    def overdue(self, now: float, after: float) -> int:
        """How many publishes sent more than ``after`` seconds before ``now`` still await their answer."""
        return sum(1 for p in self._pending.values() if p.awaiting and now - p.sent_at > after)

    def retry_at(self) -> float | None:
        """When refused publishes may go again, or None if none waits (or answers are still due)."""
        if self._refused and self._unanswered <= 0:
            return self._retry_at
        return None

    def retry(self, now: float) -> bool:
        """Put the refused publishes back in front of the unsent ones, in order, if their time has come."""
        retry_at = self.retry_at()
        if retry_at is None or now < retry_at:
            return False
        self._unsent.extendleft(sorted(self._refused, reverse=True))
        self._refused.clear()
        self._retry_at = None
        return True


def _end(publish: Publish[P], error: BaseException) -> None:
    """Fail ``publish`` with ``error``: its future, or else its settle."""
    if publish.future is not None:
        if not publish.future.done():
            publish.future.set_exception(error)
    elif publish.settle is not None:
        _tell(publish.settle, error)


def _tell(settle: Settle, error: BaseException | None) -> None:
    try:
        settle(error)
    except Exception:  # the link must go on: the publish's owner failed, not the connection
        logger.exception("a publish's settle callback failed on %r", error)
