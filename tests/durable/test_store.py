"""The durable store on a real SQLite file and a real PostgreSQL server: rows, marks, effects, group commit."""

import threading
from uuid import uuid4

import pytest

from minos.networks.durable import (
    EffectError,
    InboxMark,
    OutboxDelete,
    OutboxPut,
    OutboxRow,
    PostgresStore,
    SqliteStore,
    StoreClosedError,
    StoreError,
)

from .conftest import effect_sql


class Results:
    """Collects what ``done`` callbacks hear, and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.items: list[tuple[object, BaseException | None]] = []
        self._condition = threading.Condition()

    def done(self, result: object, error: BaseException | None) -> None:
        with self._condition:
            self.items.append((result, error))
            self._condition.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[object, BaseException | None]]:
        with self._condition:
            assert self._condition.wait_for(lambda: len(self.items) >= count, timeout), self.items
            return list(self.items)


def run_sql(store, sql: str) -> object:
    """Run one query on the store's own connection (test-only: reads the tables the store wrote)."""
    if isinstance(store, SqliteStore):
        return store._db.execute(sql).fetchall()
    return store._run(store._connection.fetch(sql))


def create_effects_table(store) -> None:
    if isinstance(store, SqliteStore):
        store._db.execute("CREATE TABLE effects (value TEXT NOT NULL)")
    else:
        store._run(store._connection.execute("CREATE TABLE effects (value TEXT NOT NULL)"))


def row(topic: str = "orders") -> OutboxRow:
    return OutboxRow(uuid4(), topic, 0, b"body-" + uuid4().bytes)


def test_outbox_rows_survive_a_reopen_in_order_and_go_when_deleted(store_factory):
    store = store_factory()
    store.open()
    rows = [row() for _ in range(5)]
    results = Results()
    for item in rows:
        store.submit(OutboxPut("publisher-a", item), results.done)
    store.submit(OutboxPut("publisher-b", row()), results.done)  # another outbox in the same store
    assert [error for _, error in results.wait(6)] == [None] * 6
    store.close()

    reopened = store_factory()
    reopened.open()
    assert reopened.load_outbox("publisher-a") == rows
    reopened.submit(OutboxDelete("publisher-a", (rows[0].id, rows[2].id)), results.done)
    results.wait(7)
    assert reopened.load_outbox("publisher-a") == [rows[1], rows[3], rows[4]]
    assert len(reopened.load_outbox("publisher-b")) == 1


def test_an_inbox_mark_applies_its_effects_once_and_a_duplicate_changes_nothing(store_factory):
    store = store_factory()
    store.open()
    create_effects_table(store)
    sql = effect_sql(store, "effects")
    identifier = uuid4()
    results = Results()
    store.submit(InboxMark("group", "orders", identifier, [(sql, ("first",))]), results.done)
    store.submit(InboxMark("group", "orders", identifier, [(sql, ("second",))]), results.done)
    store.submit(InboxMark("other-group", "orders", identifier, [(sql, ("other",))]), results.done)
    assert results.wait(3) == [(True, None), (False, None), (True, None)]
    assert sorted(value for (value,) in run_sql(store, "SELECT value FROM effects")) == ["first", "other"]


def test_a_failing_effect_rolls_back_its_own_message_only(store_factory):
    store = store_factory()
    store.open()
    create_effects_table(store)
    sql = effect_sql(store, "effects")
    results = Results()
    failing = uuid4()
    store.submit(InboxMark("group", "orders", uuid4(), [(sql, ("kept",))]), results.done)
    store.submit(
        InboxMark(
            "group",
            "orders",
            failing,
            [(sql, ("rolled back",)), ("INSERT INTO no_such_table VALUES (1)", ())],
        ),
        results.done,
    )
    store.submit(InboxMark("group", "orders", uuid4(), [(sql, ("kept too",))]), results.done)
    outcomes = results.wait(3)
    assert outcomes[0] == (True, None)
    assert outcomes[2] == (True, None)
    assert isinstance(outcomes[1][1], EffectError)
    assert str(failing) in str(outcomes[1][1])
    assert sorted(value for (value,) in run_sql(store, "SELECT value FROM effects")) == ["kept", "kept too"]
    # The failed message was not marked: its next copy is handled.
    store.submit(InboxMark("group", "orders", failing, [(sql, ("retried",))]), results.done)
    assert results.wait(4)[3] == (True, None)


def test_in_one_transaction_each_mark_says_whether_it_is_new_duplicates_of_the_same_batch_included(
    store_factory,
):
    """Marks without effects go in one statement when all are new, one by one when some are not."""
    store = store_factory()
    store.open()
    first, second, third = uuid4(), uuid4(), uuid4()
    outbox_row = row()

    # Applied directly, as the writer thread applies one batch (so the batch is exactly this one).
    assert store._apply(
        [
            InboxMark("group", "orders", first),
            InboxMark("group", "orders", second),
            OutboxPut("publisher", outbox_row),
            InboxMark("group", "orders", first),  # a copy within the same batch
            InboxMark("other-group", "orders", first),  # another group's mark of the same message
        ]
    ) == [True, True, None, False, True]
    assert store._apply([InboxMark("group", "orders", third), InboxMark("group", "orders", second)]) == [
        True,
        False,
    ]
    assert store._apply([InboxMark("group", "orders", uuid4()), InboxMark("group", "invoices", first)]) == [
        True,
        True,
    ]
    marked = run_sql(store, "SELECT grp, topic FROM minos_inbox")
    assert sorted(map(tuple, marked)) == sorted(
        [("group", "orders")] * 4 + [("other-group", "orders"), ("group", "invoices")]
    )
    assert store.load_outbox("publisher") == [outbox_row]


def test_a_burst_is_committed_in_far_fewer_transactions_than_operations(store_factory):
    store = store_factory()
    store.open()
    results = Results()
    count = 3000
    for _ in range(count):
        store.submit(OutboxPut("burst", row()), results.done)
    assert all(error is None for _, error in results.wait(count, timeout=60))
    assert store.operations == count
    assert store.commits < count / 10, (store.commits, count)


def test_marks_older_than_the_retention_are_purged_at_open(store_factory):
    store = store_factory()
    store.open()
    results = Results()
    identifier = uuid4()
    store.submit(InboxMark("group", "orders", identifier), results.done)
    results.wait(1)
    store.close()
    short = store_factory()
    short.inbox_retention = 1e-9  # everything made before now is expired
    short.open()
    short.submit(InboxMark("group", "orders", identifier), results.done)
    assert results.wait(2)[1] == (True, None)  # new again: the old mark was purged


def test_a_closed_store_refuses_work_with_a_clear_error(tmp_path):
    store = SqliteStore(tmp_path / "closed.sqlite")
    with pytest.raises(StoreClosedError, match="not open"):
        store.submit(OutboxPut("x", row()), lambda result, error: None)
    with pytest.raises(StoreClosedError):
        store.load_outbox("x")


def test_an_unopenable_sqlite_file_says_which_and_why(tmp_path):
    directory = tmp_path / "a-directory.sqlite"
    directory.mkdir()
    store = SqliteStore(directory)
    with pytest.raises(StoreError, match=r"a-directory\.sqlite"):
        store.open()
    assert not store.is_open


def test_an_unreachable_postgresql_says_where(tmp_path):
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1"):
        store.open()
    assert not store.is_open


def test_the_sqlite_store_runs_in_wal_mode_with_full_sync(tmp_path):
    store = SqliteStore(tmp_path / "wal.sqlite")
    store.open()
    try:
        assert run_sql(store, "PRAGMA journal_mode") == [("wal",)]
        assert run_sql(store, "PRAGMA synchronous") == [(2,)]  # FULL
    finally:
        store.close()
