"""The durable store: outbox rows and inbox marks in SQLite or PostgreSQL, written by group commit.

One writer thread per store takes whatever operations are queued, applies them all in one
transaction and commits once, so a burst of N messages costs one disk flush, not N. While a commit
flushes, the next batch gathers. Each operation's ``done`` callback is called on the writer thread
once its transaction committed (or failed): nothing is reported stored before it is.

Durability: SQLite runs in WAL mode with ``synchronous=FULL``, so a commit is on disk before it is
reported (a process kill -9 or a power loss loses nothing committed, provided the disk honours
fsync). PostgreSQL commits with its own settings (``synchronous_commit=on`` by default: the same).

Tables (created when missing; ``minos_`` prefix, in the configured schema on PostgreSQL)::

    minos_outbox (origin, id, topic, strategy, body, created)   primary key (origin, id)
    minos_inbox  (grp, topic, id, handled)                      primary key (grp, topic, id)
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from ..actors.eventloop import new_event_loop
from ..exceptions import MinosNetworkException

__all__ = [
    "DurableStore",
    "InboxMark",
    "OutboxDelete",
    "OutboxPut",
    "OutboxRow",
    "PostgresStore",
    "SqliteStore",
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


_SQLITE_OUTBOX_PUT = (
    "INSERT OR REPLACE INTO minos_outbox (origin, id, topic, strategy, body, created) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQLITE_INBOX_MARK = (
    "INSERT INTO minos_inbox (grp, topic, id, handled) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class SqliteStore(DurableStore):
    """The embedded store: one SQLite file in WAL mode, flushed to disk at every commit.

    Several processes may share the file (the members of one group sharing an inbox): SQLite lets
    one of them write at a time and the others wait up to ``busy_timeout`` seconds.

    Args:
        path: The database file; created with its directory when missing.
        name: Names the writer thread.
        busy_timeout: Seconds a commit waits for another process's write to finish.
        inbox_retention: Seconds an inbox mark is kept.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "sqlite",
        busy_timeout: float = 30.0,
        inbox_retention: float = 7 * 24 * 3600.0,
    ) -> None:
        super().__init__(name, inbox_retention=inbox_retention)
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._db = db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"SQLite refused WAL mode for {self.path} (got {mode!r}); use a local file")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS minos_outbox (origin TEXT NOT NULL, id BLOB NOT NULL, "
            "topic TEXT NOT NULL, strategy INTEGER NOT NULL, body BLOB NOT NULL, created REAL NOT NULL, "
            "PRIMARY KEY (origin, id))"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS minos_inbox (grp TEXT NOT NULL, topic TEXT NOT NULL, "
            "id BLOB NOT NULL, handled REAL NOT NULL, PRIMARY KEY (grp, topic, id))"
        )
        db.execute("CREATE INDEX IF NOT EXISTS minos_inbox_handled ON minos_inbox (handled)")

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _purge(self, before: float) -> None:
        assert self._db is not None
        self._db.execute("DELETE FROM minos_inbox WHERE handled < ?", (before,))

    def _load_outbox(self, origin: str) -> list[OutboxRow]:
        with self._io_lock:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT id, topic, strategy, body FROM minos_outbox WHERE origin = ? ORDER BY created, rowid",
                (origin,),
            ).fetchall()
        return [
            OutboxRow(UUID(bytes=bytes(id_)), topic, strategy, bytes(body))
            for id_, topic, strategy, body in rows
        ]

    def _apply(self, operations: list[Operation]) -> list[Any]:
        db = self._db
        assert db is not None
        results: list[Any] = [None] * len(operations)
        now = time.time()
        with self._io_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                # Runs of outbox rows, and runs of marks without effects, go in one executemany each.
                puts: list[tuple[Any, ...]] = []
                marks: list[tuple[int, InboxMark]] = []
                for index, operation in enumerate(operations):
                    if isinstance(operation, OutboxPut):
                        if marks:
                            self._apply_marks(db, marks, results, now)
                            marks = []
                        row = operation.row
                        puts.append((operation.origin, row.id.bytes, row.topic, row.strategy, row.body, now))
                        continue
                    if puts:
                        db.executemany(_SQLITE_OUTBOX_PUT, puts)
                        puts = []
                    if isinstance(operation, InboxMark) and not operation.effects:
                        marks.append((index, operation))
                        continue
                    if marks:
                        self._apply_marks(db, marks, results, now)
                        marks = []
                    results[index] = self._apply_one(db, operation, now)
                if puts:
                    db.executemany(_SQLITE_OUTBOX_PUT, puts)
                if marks:
                    self._apply_marks(db, marks, results, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return results

    @classmethod
    def _apply_marks(
        cls, db: sqlite3.Connection, marks: list[tuple[int, InboxMark]], results: list[Any], now: float
    ) -> None:
        """Apply a run of marks without effects, putting each one's result at its index in ``results``.

        All in one executemany when every mark is new (the usual case, told by the count of rows it
        inserted); when some were marked before (or it fails), that is undone and the marks go one by
        one, which tells which is which.
        """
        if len(marks) > 1:
            db.execute("SAVEPOINT minos_marks")
            try:
                before = db.total_changes
                db.executemany(
                    _SQLITE_INBOX_MARK, [(mark.group, mark.topic, mark.id.bytes, now) for _, mark in marks]
                )
                if db.total_changes - before == len(marks):
                    db.execute("RELEASE minos_marks")
                    for index, _ in marks:
                        results[index] = True
                    return
            except sqlite3.Error:
                pass
            db.execute("ROLLBACK TO minos_marks")
            db.execute("RELEASE minos_marks")
        for index, mark in marks:
            results[index] = cls._apply_one(db, mark, now)

    @staticmethod
    def _apply_one(db: sqlite3.Connection, operation: OutboxDelete | InboxMark, now: float) -> Any:
        """Apply a delete or a mark (``_apply`` writes the outbox rows itself, a run at a time)."""
        if isinstance(operation, OutboxDelete):
            db.executemany(
                "DELETE FROM minos_outbox WHERE origin = ? AND id = ?",
                [(operation.origin, id_.bytes) for id_ in operation.ids],
            )
            return None
        mark = (operation.group, operation.topic, operation.id.bytes, now)
        if not operation.effects:
            # One statement: a savepoint only matters when effects must go back with the mark. A failed
            # statement leaves the rest of the transaction as it was.
            try:
                return db.execute(_SQLITE_INBOX_MARK, mark).rowcount == 1
            except sqlite3.Error as error:
                return EffectError(f"the mark of message {operation.id} failed, nothing was stored: {error}")
        db.execute("SAVEPOINT minos_mark")
        try:
            inserted = db.execute(_SQLITE_INBOX_MARK, mark).rowcount
            if inserted != 1:
                db.execute("ROLLBACK TO minos_mark")
                return False
            for sql, params in operation.effects:
                db.execute(sql, tuple(params))
        except sqlite3.Error as error:
            db.execute("ROLLBACK TO minos_mark")
            return EffectError(
                f"an effect of message {operation.id} failed, nothing of it was stored: {error}"
            )
        finally:
            db.execute("RELEASE minos_mark")
        return True


class EffectError(StoreError):
    """A handler's effect failed in the inbox transaction: the mark and every effect of that message were rolled back."""


class PostgresStore(DurableStore):
    """The shared store: PostgreSQL through asyncpg, run in the writer thread's own event loop.

    Args:
        dsn: ``postgresql://user@host:port/database``.
        schema: The schema holding the tables; created when missing.
        name: Names the writer thread.
        inbox_retention: Seconds an inbox mark is kept.
        connect_timeout: Seconds connecting may take.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        name: str = "postgres",
        inbox_retention: float = 7 * 24 * 3600.0,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(name, inbox_retention=inbox_retention)
        if not schema.isidentifier():
            raise ValueError(f"schema must be a plain SQL identifier, got {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Any = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.dsn!r}, schema={self.schema!r})"

    def _run(self, coroutine: Any) -> Any:
        assert self._loop is not None
        with self._io_lock:
            return self._loop.run_until_complete(coroutine)

    def _connect(self) -> None:
        try:
            import asyncpg  # imported here: only services configured for PostgreSQL need it
        except ImportError as error:
            raise StoreError(
                "the PostgreSQL store needs asyncpg: pip install 'minos-networks[postgresql]'"
            ) from error

        self._loop = new_event_loop()

        async def connect() -> Any:
            connection = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            # The store's own tables go to its schema; a handler's inbox_execute statements find their
            # tables there first, then in public (where a service's tables usually are).
            await connection.execute(f'SET search_path TO "{self.schema}", public')
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS minos_outbox (origin TEXT NOT NULL, id UUID NOT NULL, "
                "topic TEXT NOT NULL, strategy SMALLINT NOT NULL, body BYTEA NOT NULL, "
                "created DOUBLE PRECISION NOT NULL, seq BIGSERIAL, PRIMARY KEY (origin, id))"
            )
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS minos_inbox (grp TEXT NOT NULL, topic TEXT NOT NULL, "
                "id UUID NOT NULL, handled DOUBLE PRECISION NOT NULL, PRIMARY KEY (grp, topic, id))"
            )
            await connection.execute(
                "CREATE INDEX IF NOT EXISTS minos_inbox_handled ON minos_inbox (handled)"
            )
            return connection

        self._connection = self._run(connect())

    def _disconnect(self) -> None:
        if self._loop is None:
            return
        if self._connection is not None:
            try:
                self._run(self._connection.close(timeout=5))
            except Exception:
                logger.warning("%s: the connection did not close cleanly", self, exc_info=True)
            self._connection = None
        self._loop.close()
        self._loop = None

    def _purge(self, before: float) -> None:
        self._run(self._connection.execute("DELETE FROM minos_inbox WHERE handled < $1", before))

    def _load_outbox(self, origin: str) -> list[OutboxRow]:
        rows = self._run(
            self._connection.fetch(
                "SELECT id, topic, strategy, body FROM minos_outbox WHERE origin = $1 ORDER BY seq", origin
            )
        )
        return [OutboxRow(row["id"], row["topic"], row["strategy"], bytes(row["body"])) for row in rows]

    def _apply(self, operations: list[Operation]) -> list[Any]:
        return list(self._run(self._apply_async(operations)))

    async def _apply_async(self, operations: list[Operation]) -> list[Any]:
        import asyncpg

        connection = self._connection
        now = time.time()
        results: list[Any] = []
        async with connection.transaction():
            puts = [operation for operation in operations if isinstance(operation, OutboxPut)]
            for operation in operations:
                if isinstance(operation, OutboxPut):
                    results.append(None)
                elif isinstance(operation, OutboxDelete):
                    await connection.execute(
                        "DELETE FROM minos_outbox WHERE origin = $1 AND id = ANY($2::uuid[])",
                        operation.origin,
                        list(operation.ids),
                    )
                    results.append(None)
                else:
                    results.append(await self._mark(connection, operation, now, asyncpg.PostgresError))
            if puts:  # one round trip for the whole batch's rows; deletes above never target them
                await connection.executemany(
                    "INSERT INTO minos_outbox (origin, id, topic, strategy, body, created) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (origin, id) DO UPDATE SET body = EXCLUDED.body",
                    [
                        (put.origin, put.row.id, put.row.topic, put.row.strategy, put.row.body, now)
                        for put in puts
                    ],
                )
        return results

    @staticmethod
    async def _mark(
        connection: Any, operation: InboxMark, now: float, database_error: type[Exception]
    ) -> Any:
        try:
            async with connection.transaction():  # nested: a savepoint
                status = await connection.execute(
                    "INSERT INTO minos_inbox (grp, topic, id, handled) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT DO NOTHING",
                    operation.group,
                    operation.topic,
                    operation.id,
                    now,
                )
                if status != "INSERT 0 1":
                    raise _Duplicate
                for sql, params in operation.effects:
                    await connection.execute(sql, *params)
        except _Duplicate:
            return False
        except database_error as error:
            return EffectError(
                f"an effect of message {operation.id} failed, nothing of it was stored: {error}"
            )
        return True


class _Duplicate(Exception):
    """Rolls the savepoint of an inbox mark back: the message had been marked before."""
