"""The durable store: outbox rows and inbox marks in SQLite or PostgreSQL, written by group commit.

One writer thread per store takes whatever operations are queued, applies them all in one
transaction and commits once, so a burst of N messages costs one disk flush, not N. While a commit
flushes, the next batch gathers. Each operation's ``done`` callback is called on the writer thread
once its transaction committed (or failed): nothing is reported stored before it is.

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a commit is on disk before it is
reported (a process kill -9 or a power loss loses nothing committed, provided the disk honours
fsync). PostgreSQL commits with its own settings (``synchronous_commit=on`` by default: the same).

The backends are ``sqlite.SqliteStore`` and ``postgres.PostgresStore``. Tables (created when missing;
``minos_`` prefix, in the configured schema on PostgreSQL)::

    minos_outbox (origin, id, topic, strategy, body, created)   primary key (origin, id)
    minos_inbox  (grp, topic, id, handled)                      primary key (grp, topic, id)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ..exceptions import MinosNetworkException

__all__ = [
    "DurableStore",
    "EffectError",
    "InboxMark",
    "OutboxDelete",
    "OutboxPut",
    "OutboxRow",
    "StoreClosedError",
    "StoreError",
]

logger = logging.getLogger(__name__)

MAX_BATCH = 5000
"""The most operations one transaction takes; a longer queue is committed in several."""


class StoreError(MinosNetworkException):
    """The durable store could not commit: nothing of the failed transaction was stored."""


class StoreClosedError(StoreError):
    """The durable store is closed (or was never opened), so it cannot store anything."""


class EffectError(StoreError):
    """A handler's effect failed in the inbox transaction: the mark and every effect of that message were rolled back."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message a publisher has stored and not yet seen received: its frame body and where it goes."""

    id: UUID
    topic: str
    strategy: int
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxPut:
    """Store ``row`` in ``origin``'s outbox. Result: None."""

    origin: str
    row: OutboxRow


@dataclass(frozen=True, slots=True)
class OutboxDelete:
    """Delete rows of ``origin``'s outbox (received by the other side). Result: None."""

    origin: str
    ids: tuple[UUID, ...]


@dataclass(frozen=True, slots=True)
class InboxMark:
    """Mark a message handled by ``group``, and run the handler's ``effects`` with the mark, atomically.

    Result: True when this mark is new (the effects were applied), False when the message had been
    marked before (a duplicate: the effects were rolled back, nothing changed). When an effect fails,
    the mark and every effect are rolled back and ``done`` gets the error.
    """

    group: str
    topic: str
    id: UUID
    effects: Sequence[tuple[str, Sequence[Any]]] = field(default=())


Operation = OutboxPut | OutboxDelete | InboxMark
Done = Callable[[Any, BaseException | None], None]
"""Told, on the writer thread, an operation's result, or the error that failed its transaction."""


class DurableStore(ABC):
    """A database holding outbox rows and inbox marks, written by one group-committing thread.

    Args:
        name: Names the writer thread (``minos-<name>-store``).
        inbox_retention: Seconds an inbox mark is kept; a duplicate arriving later is handled again.
    """

    def __init__(self, name: str, *, inbox_retention: float = 7 * 24 * 3600.0) -> None:
        if inbox_retention <= 0:
            raise ValueError(f"inbox_retention must be positive, got {inbox_retention!r}")
        self.name = name
        self.inbox_retention = inbox_retention
        self._queue: queue.SimpleQueue[tuple[Operation, Done] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._open = False
        self._lock = threading.Lock()  # open/close
        self._io_lock = (
            threading.Lock()
        )  # the connection is used by one thread at a time: loads vs the writer
        self.commits = 0
        """Transactions committed (each holds a batch of operations); for metrics and tests."""
        self.operations = 0
        """Operations committed."""

    # Any thread ----------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether the store takes operations."""
        return self._open

    def open(self) -> None:
        """Connect, create the tables when missing, drop expired inbox marks, start the writer (idempotent).

        Raises:
            StoreError: when the database cannot be opened; the message says which and why.
        """
        with self._lock:
            if self._open:
                return
            try:
                self._connect()
                self._purge(time.time() - self.inbox_retention)
            except Exception as error:
                self._disconnect()
                raise StoreError(f"cannot open the durable store {self!r}: {error}") from error
            self._thread = threading.Thread(target=self._write, name=f"minos-{self.name}-store", daemon=True)
            self._open = True
            self._thread.start()

    def close(self) -> None:
        """Commit what is queued, stop the writer and disconnect (idempotent; blocks until done)."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            self._queue.put(None)
            assert self._thread is not None
            self._thread.join()
            self._thread = None
            self._disconnect()

    def submit(self, operation: Operation, done: Done) -> None:
        """Queue ``operation`` for the next commit; ``done`` hears its result on the writer thread.

        Raises:
            StoreClosedError: when the store is not open; nothing was queued.
        """
        if not self._open:
            raise StoreClosedError(f"the durable store {self!r} is not open: start the service first")
        self._queue.put((operation, done))

    def load_outbox(self, origin: str) -> list[OutboxRow]:
        """The rows in ``origin``'s outbox, oldest first (call before submitting to that outbox)."""
        if not self._open:
            raise StoreClosedError(f"the durable store {self!r} is not open")
        return self._load_outbox(origin)

    # The writer thread ---------------------------------------------------------------------------------

    def _write(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch: list[tuple[Operation, Done]] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True  # None: close() asked; the queue ahead of it is in this batch
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Operation, Done]]) -> None:
        try:
            results = self._apply([operation for operation, _ in batch])
        except Exception as error:
            logger.exception("%s: a transaction of %d operations failed", self, len(batch))
            failure = StoreError(f"the durable store {self!r} could not commit: {error}")
            for _, done in batch:
                done(None, failure)
            return
        self.commits += 1
        self.operations += len(batch)
        for (_, done), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                done(None, result)
            else:
                done(result, None)

    # The backend ---------------------------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> None:
        """Connect and create the tables when missing."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the connection (safe when it was never opened)."""

    @abstractmethod
    def _purge(self, before: float) -> None:
        """Delete the inbox marks made before ``before`` (a time.time() value)."""

    @abstractmethod
    def _load_outbox(self, origin: str) -> list[OutboxRow]:
        """Read ``origin``'s outbox."""

    @abstractmethod
    def _apply(self, operations: list[Operation]) -> list[Any]:
        """Apply ``operations`` in one transaction and commit; return one result (or error) per operation.

        An error that fails the whole transaction is raised instead.
        """
