"""The embedded durable store: one SQLite file in WAL mode, flushed to disk at every commit.

Runs of outbox rows, and runs of inbox marks without effects, are written with one ``executemany``
each; a mark with effects gets its own savepoint so that it and its effects go back together.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from .store import (
    DurableStore,
    EffectError,
    InboxMark,
    Operation,
    OutboxDelete,
    OutboxPut,
    OutboxRow,
    StoreError,
)

__all__ = ["SqliteStore"]

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
