"""PublishWindow: a ZeroMQ connection's publishes from ``publish_nowait`` until the broker accepts them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from .connection import RoomWaiters
from .wire import RECORD_HEAD

__all__ = ["PublishWindow"]

_RETRY_FIRST: Final = 0.005  # seconds before refused publishes go again; doubles while the broker refuses
_RETRY_MAX: Final = 0.25


@dataclass(slots=True)
class _Publish:
    record: bytes
    topic: str
    future: asyncio.Future[None]


class PublishWindow:
    """The publishes the broker has not accepted yet, in sequence order, with a bound on how many.

    The API side adds publishes (``add``) and waits for room (``wait_room``). The socket side takes what
    to send (``take``), reports the broker's answers (``accepted``, ``refused``) and starts over on a new
    socket (``restart``: everything unaccepted goes again, the same bytes). Refused publishes go again
    after a backoff, in order, but only once every publish sent has its answer: the broker refuses every
    later publish of a peer after a refused one (see ``wire``), so the refused ones are then exactly the
    tail of what was sent, and one publisher's messages keep their order.

    Lives in one event loop; not thread-safe.

    Args:
        size: How many publishes may await acceptance at once.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {size!r}")
        self.size = size
        self._sequence = 0
        self._pending: dict[int, _Publish] = {}  # by sequence, so in order
        self._unsent: deque[int] = deque()
        self._unanswered = 0  # sent on the current socket, no answer yet
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

    # The API side ---------------------------------------------------------------------------------------

    def add(self, topic: str, encoded_topic: bytes, body: bytes, strategy: int) -> asyncio.Future[None]:
        """Queue a publish (the caller checked ``has_room``); the future resolves once it is accepted."""
        # asyncio.get_running_loop() makes a getpid() system call on Python 3.11: not once per message.
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._sequence += 1
        sequence = self._sequence
        record = RECORD_HEAD.pack(sequence, strategy, len(encoded_topic), len(body)) + encoded_topic + body
        self._pending[sequence] = _Publish(record, topic, future)
        self._unsent.append(sequence)
        return future

    async def wait_room(self, check: Callable[[], None]) -> None:
        """Return once ``has_room``; ``check`` runs after each wake-up and raises to stop waiting."""
        await self._room.wait(lambda: len(self._pending) >= self.size, check)

    def fail(self, error: Callable[[str], BaseException]) -> None:
        """Fail every unaccepted publish with ``error(topic)`` and every room waiter with ``error("")``."""
        for publish in self._pending.values():
            if not publish.future.done():
                publish.future.set_exception(error(publish.topic))
        self._pending.clear()
        self._unsent.clear()
        self._refused.clear()
        self._room.fail(error(""))

    # The socket side ------------------------------------------------------------------------------------

    def restart(self) -> None:
        """Forget what the last socket sent: every unaccepted publish goes again, in order."""
        self._unsent = deque(self._pending)
        self._unanswered = 0
        self._refused.clear()
        self._retry_at = None

    def take(self, max_bytes: int) -> list[bytes]:
        """The records to send now, in order, up to about ``max_bytes``; none while refused ones wait."""
        records: list[bytes] = []
        if self._refused:
            return records
        unsent, pending = self._unsent, self._pending
        size = 0
        while unsent and size < max_bytes:
            publish = pending.get(unsent.popleft())
            if publish is not None:
                records.append(publish.record)
                size += len(publish.record)
        return records

    def sent(self, records: Sequence[bytes], *, ok: bool) -> None:
        """Report whether the records of the last ``take`` went out; if not, they wait in front."""
        if ok:
            self._unanswered += len(records)
        else:
            self._unsent.extendleft(reversed([RECORD_HEAD.unpack_from(record)[0] for record in records]))

    def accepted(self, sequences: Sequence[int]) -> None:
        """The broker accepted these: resolve their futures and wake who waits for room."""
        self._unanswered -= len(sequences)
        self._retry_delay = _RETRY_FIRST
        pending = self._pending
        for sequence in sequences:
            publish = pending.pop(sequence, None)
            if publish is not None and not publish.future.done():
                publish.future.set_result(None)
        self._room.wake(self.size - len(pending))

    def refused(self, sequences: Sequence[int], now: float) -> None:
        """The broker had no room for these: send them again after a backoff."""
        self._unanswered -= len(sequences)
        self._refused.extend(sequence for sequence in sequences if sequence in self._pending)
        if self._retry_at is None:
            self._retry_at = now + self._retry_delay
            self._retry_delay = min(_RETRY_MAX, 2 * self._retry_delay)

    def retry_at(self) -> float | None:
        """When refused publishes may go again, or None if none waits (or answers are still due)."""
        if self._refused and self._unanswered <= 0:
            return self._retry_at
        return None

    def retry(self, now: float) -> None:
        """Put the refused publishes back in front of the unsent ones, if their time has come."""
        retry_at = self.retry_at()
        if retry_at is not None and now >= retry_at:
            self._unsent.extendleft(reversed(self._refused))
            self._refused.clear()
            self._retry_at = None
