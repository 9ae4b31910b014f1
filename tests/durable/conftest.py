"""A durable store of each kind, opened on a real SQLite file or a fresh PostgreSQL schema."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from minos.networks.durable import DurableStore, PostgresStore, SqliteStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type]:
    """Builds unopened stores on one database (each call a new store on the same file or schema)."""
    made: list[DurableStore] = []
    if request.param == "sqlite":
        path = tmp_path / "durable.sqlite"

        def make() -> DurableStore:
            store = SqliteStore(path, name="test-sqlite")
            made.append(store)
            return store

    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")

        def make() -> DurableStore:
            store = PostgresStore(dsn, schema=schema, name="test-postgres")
            made.append(store)
            return store

    yield make
    for store in made:
        store.close()


def effect_sql(store: DurableStore, table: str) -> str:
    """An INSERT of one value into ``table`` in the store's dialect."""
    placeholder = "$1" if isinstance(store, PostgresStore) else "?"
    return f"INSERT INTO {table} (value) VALUES ({placeholder})"
