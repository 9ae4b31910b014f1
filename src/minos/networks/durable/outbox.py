"""The outbox: a durable publisher's messages, stored before ``send`` returns and kept until received.

The promise, for a publisher with an outbox:

- ``send`` returns once the message is committed to the store (a group commit: one disk flush for all
  the messages committed together). From then on it is not lost by a kill -9 of any process, a broker
  restart, or (SQLite with its default ``synchronous=FULL``, or PostgreSQL with
  ``synchronous_commit=on``) a power loss, as long as the store's disk survives.
- The message is then sent to the broker; its row is deleted only when a receipt comes back from the
  receiving side (which sends it once the message is handled and marked in its inbox, or received).
- A row without a receipt is sent again, with the same identifier: at start-up (every row left from
  before), and while running after ``resend_after`` seconds, then at doubling intervals up to
  ``max_resend_interval`` (a broker restart loses what it held; a slow consumer just makes copies that
  the receiving side drops). The receiving side drops copies by identifier and confirms them again.
- A MULTICAST message is deleted after the first receipt, from whichever group: a group that was not
  subscribed at the broker when the message (or its last copy) went through misses it.
- A message nobody subscribes to is kept and sent again forever, at ``max_resend_interval``.
- At most ``max_pending`` rows wait for their receipt; ``send`` waits for room beyond that, so a
  publisher outrunning its consumers is slowed down rather than filling its disk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from ..actors.handoff import LoopHandoff, resolve
from ..transports import RoomWaiters
from .store import DurableStore, OutboxDelete, OutboxPut, OutboxRow, StoreClosedError

__all__ = ["Outbox"]

logger = logging.getLogger(__name__)

Send = Callable[[OutboxRow], None]
"""Hands a stored row to the broker connection, fire and forget (from the caller's loop)."""


@dataclass(slots=True)
class _Pending:
    row: OutboxRow
    due: float  # time.monotonic() when it is sent again if no receipt came
    interval: float  # seconds until the next copy after that


class Outbox:
    """One publisher's outbox in a durable store.

    Args:
        store: Where the rows are kept (opened by ``start`` if it is not yet).
        origin: Whose outbox this is; stable across restarts (the rows of the previous run are found by
            it) and distinct for each publisher sharing the store.
        max_pending: How many rows may wait for their receipt before ``put`` waits.
        resend_after: Seconds without a receipt before a row is sent again.
        max_resend_interval: The longest wait between two copies of a row.
    """

    def __init__(
        self,
        store: DurableStore,
        origin: str,
        *,
        max_pending: int = 10_000,
        resend_after: float = 5.0,
        max_resend_interval: float = 60.0,
    ) -> None:
        if max_pending < 1 or resend_after <= 0 or max_resend_interval < resend_after:
            raise ValueError(
                f"an outbox needs max_pending >= 1, resend_after > 0 and max_resend_interval >= "
                f"resend_after; got {max_pending!r}, {resend_after!r} and {max_resend_interval!r}"
            )
        self.store = store
        self.origin = origin
        self.max_pending = max_pending
        self.resend_after = resend_after
        self.max_resend_interval = max_resend_interval
        # By the identifier's int: it hashes in C, a UUID in Python (three lookups per message).
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()  # _pending: the caller's loop adds, the receipts' loop removes
        self._handoff: LoopHandoff | None = None
        self._room = RoomWaiters()
        self._empty_waiters: list[asyncio.Future[None]] = []
        self._send: Send | None = None
        self._resender: asyncio.Task[None] | None = None
        self.resent = 0
        """Copies sent again for want of a receipt (at start-up or after ``resend_after``)."""
        self.confirmed = 0
        """Rows deleted on a receipt."""

    def __repr__(self) -> str:
        return f"<Outbox {self.origin!r} in {self.store!r}: {len(self._pending)} pending>"

    @property
    def pending(self) -> int:
        """How many rows wait for a receipt."""
        return len(self._pending)

    async def start(self, send: Send) -> None:
        """Open the store, send again every row left from before, and watch for missing receipts.

        Raises:
            StoreError: when the store cannot be opened.
        """
        if self._send is not None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.store.open)
        rows = await loop.run_in_executor(None, self.store.load_outbox, self.origin)
        self._handoff = LoopHandoff(loop)
        self._send = send
        now = time.monotonic()
        with self._lock:
            for row in rows:
                self._pending[row.id.int] = _Pending(row, now + self.resend_after, self.resend_after)
        if rows:
            logger.info("%s: sending again %d messages stored before a restart", self, len(rows))
        for row in rows:
            self.resent += 1
            send(row)
        self._resender = loop.create_task(self._resend_forever())

    async def stop(self) -> None:
        """Stop resending; rows stay in the store for the next start. The store is closed by its owner."""
        self._send = None
        if self._resender is not None:
            self._resender.cancel()
            await asyncio.gather(self._resender, return_exceptions=True)
            self._resender = None
        self._room.fail(RuntimeError("the outbox stopped"))
        for waiter in self._empty_waiters:
            resolve(waiter, error=RuntimeError("the outbox stopped"))
        self._empty_waiters.clear()

    async def put(self, row: OutboxRow) -> None:
        """Store ``row`` durably, then send it; returns once it is committed (waiting first for room).

        Raises:
            StoreError: when the commit failed; the message was not stored and not sent.
        """
        if len(self._pending) >= self.max_pending:  # only then: a coroutine per put costs more than the check
            await self._room.wait(lambda: len(self._pending) >= self.max_pending, lambda: None)
        handoff, send = self._handoff, self._send
        if handoff is None or send is None:
            raise RuntimeError(f"{self!r} is not started")
        committed: asyncio.Future[None] = handoff.loop.create_future()
        with self._lock:  # reserved now, so concurrent puts see the room taken
            self._pending[row.id.int] = _Pending(row, float("inf"), self.resend_after)
        self.store.submit(
            OutboxPut(self.origin, row), lambda _result, error: handoff.call(resolve, committed, None, error)
        )
        try:
            await committed
        except BaseException:
            with self._lock:
                self._pending.pop(row.id.int, None)
            self._wake_waiters()
            raise
        with self._lock:
            entry = self._pending.get(row.id.int)
            if entry is not None:
                entry.due = time.monotonic() + self.resend_after
        send(row)

    def confirm(self, identifiers: Iterable[UUID]) -> None:
        """Delete the rows a receipt confirms; callable from any thread. Unknown identifiers are ignored."""
        with self._lock:
            gone = tuple(identifier for identifier in identifiers if self._pending.pop(identifier.int, None))
        if not gone:
            return
        self.confirmed += len(gone)
        try:
            self.store.submit(OutboxDelete(self.origin, gone), self._deleted)
        except StoreClosedError:  # stopping: the rows come back at the next start and are confirmed again
            logger.info("%s: the store closed before %d confirmed rows were deleted", self, len(gone))
        if self._handoff is not None:
            self._handoff.call(self._wake_waiters)

    def _deleted(self, _result: object, error: BaseException | None) -> None:  # the writer thread
        if error is not None:  # the rows come back at the next start; the receiving side drops them
            logger.warning("%s: could not delete confirmed rows: %s", self, error)

    def _wake_waiters(self) -> None:
        self._room.wake(self.max_pending - len(self._pending))
        if not self._pending and self._empty_waiters:
            for waiter in self._empty_waiters:
                resolve(waiter)
            self._empty_waiters.clear()

    async def wait_empty(self) -> None:
        """Return once every stored message has been confirmed (at once if none waits); in the caller's loop."""
        if not self._pending:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._empty_waiters.append(waiter)
        await waiter

    async def _resend_forever(self) -> None:
        tick = min(self.resend_after / 2, 1.0)
        while True:
            await asyncio.sleep(tick)
            self.resend_due(time.monotonic())

    def resend_due(self, now: float) -> int:
        """Send again every row whose receipt is overdue at ``now`` (a time.monotonic() value); how many."""
        send = self._send
        if send is None:
            return 0
        with self._lock:
            due = [entry for entry in self._pending.values() if entry.due <= now]
            for entry in due:
                entry.interval = min(entry.interval * 2, self.max_resend_interval)
                entry.due = now + entry.interval
        for entry in due:
            send(entry.row)
        self.resent += len(due)
        if due:
            logger.info("%s: no receipt yet for %d messages, sent them again", self, len(due))
        return len(due)
