"""The shared durable store: PostgreSQL through asyncpg, run in the writer thread's own event loop.

asyncpg is imported when the store connects: only services configured for PostgreSQL need it installed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..actors.eventloop import new_event_loop
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

__all__ = ["PostgresStore"]

# The logger of the module this class came from: log filters and the JSON `logger` field keep their name.
logger = logging.getLogger("minos.networks.durable.store")


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
        import asyncpg  # optional, as in _connect; loaded by then, so this is a lookup

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
