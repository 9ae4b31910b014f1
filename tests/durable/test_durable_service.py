"""Durable services end to end: a real embedded ZeroMQ broker, real stores (SQLite file, PostgreSQL schema).

Each test waits on the outbox emptying (every message confirmed by the receiving side, which confirms
only after its inbox committed) or on the handler's own signals, never on a pause.
"""

import asyncio
import sqlite3
import time
from uuid import uuid4

import pytest

from minos.common import Config, ConfigError
from minos.networks import (
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPort,
    BrokerPublisher,
    BrokerSubscriber,
    Request,
    enroute,
)
from minos.networks.brokers import broker_settings
from minos.networks.durable import OUTBOX_HEADER, NoInboxTransactionError, inbox_execute

from ..conftest import query_postgres

CALLS: dict[str, list[int]] = {}  # service name -> the content of every message its handler ran on


class CountingService:
    """Records each message's content as an effect in the inbox transaction, and each run in CALLS."""

    def __init__(self, config: Config) -> None:
        self.name = config.name
        self.placeholder = (
            "$1" if config.get_str("interfaces.broker.durable.store", "sqlite") == "postgresql" else "?"
        )

    @enroute.broker.event("durable.counted")
    async def count(self, request: Request) -> None:
        content = await request.content()
        CALLS.setdefault(self.name, []).append(content)
        inbox_execute(f"INSERT INTO effects (value) VALUES ({self.placeholder})", (content,))

    @enroute.broker.event("durable.broken")
    async def broken(self, request: Request) -> None:
        CALLS.setdefault(self.name, []).append(await request.content())
        inbox_execute("INSERT INTO no_such_table (value) VALUES (1)")


class Database:
    """The test's view of the service's store: creates the effects table and counts rows."""

    def __init__(self, kind: str, target: str, schema: str = "") -> None:
        self.kind, self.target, self.schema = kind, target, schema

    async def execute(self, sql: str) -> list[tuple]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.target) as db:
                return db.execute(sql).fetchall()
        return await query_postgres(self.target, self.schema, sql)

    async def count(self, table: str) -> int:
        return (await self.execute(f"SELECT count(*) FROM {table}"))[0][0]

    async def values(self) -> list[int]:
        return sorted(int(value) for (value,) in await self.execute("SELECT value FROM effects"))


@pytest.fixture(params=["sqlite", "postgresql"])
def durable(request, tmp_path):
    """(config builder, database): a durable service config on each store, and a view of its database."""
    name = f"durable{uuid4().hex[:8]}"
    CALLS.pop(name, None)
    if request.param == "sqlite":
        path = tmp_path / "service.sqlite"
        section = {"path": str(path)}
        database = Database("sqlite", str(path))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("postgres_schema")
        section = {"store": "postgresql", "dsn": dsn, "schema": schema}
        database = Database("postgresql", dsn, schema)

    def make(**extra: object) -> Config:
        return Config(
            {
                "name": name,
                "interfaces": {
                    "broker": {
                        "endpoint": f"inproc://{name}",
                        "heartbeat_interval": 0.2,
                        "close_timeout": 2.0,
                        "retries": {"max_attempts": 2, "initial_delay": 0.01, "max_delay": 0.01},
                        "durable": {**section, **extra},
                    }
                },
                "services": [CountingService],
            }
        )

    yield make, database
    CALLS.pop(name, None)


def event(content: int, **kwargs) -> BrokerMessageV1:
    return BrokerMessageV1("durable.counted", BrokerMessageV1Payload(content), **kwargs)


async def test_each_message_is_stored_handled_once_and_confirmed(durable):
    make, database = durable
    config = make()
    await database.execute("CREATE TABLE effects (value INTEGER NOT NULL)")
    count = 300
    async with BrokerPort.from_config(config) as port, BrokerPublisher.from_config(config) as publisher:
        await asyncio.gather(*(publisher.send(event(n)) for n in range(count)))
        await asyncio.wait_for(publisher.outbox.wait_empty(), 20)
        assert publisher.outbox.confirmed == count
        assert port.inbox.store.commits < count  # group commit: marks share transactions
    assert await database.values() == list(range(count))
    assert await database.count("minos_outbox") == 0
    assert await database.count("minos_inbox") == count


async def test_messages_kept_in_the_outbox_are_sent_again_by_the_next_run(durable):
    make, database = durable
    config = make()
    await database.execute("CREATE TABLE effects (value INTEGER NOT NULL)")
    # The broker, and nobody handling: nothing is confirmed.
    async with BrokerPort.broker_only(config), BrokerPublisher.from_config(config) as first:
        for n in range(20):
            await first.send(event(n))
        assert first.outbox.pending == 20
    assert await database.count("minos_outbox") == 20  # stored, and still there after the publisher stopped

    async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as second:
        assert second.outbox.resent == 20  # found at start and sent again, with the same identifiers
        await asyncio.wait_for(second.outbox.wait_empty(), 20)
    assert await database.values() == list(range(20))
    assert await database.count("minos_outbox") == 0


async def test_a_copy_of_a_handled_message_runs_no_effect_twice_and_is_confirmed_again(durable):
    make, database = durable
    config = make()
    await database.execute("CREATE TABLE effects (value INTEGER NOT NULL)")
    message = event(7)
    async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as publisher:
        await publisher.send(message)
        await asyncio.wait_for(publisher.outbox.wait_empty(), 20)
    # A new port (its in-memory duplicate filter is empty, as after a crash) gets a copy with the same
    # identifier: the handler runs, the inbox finds the mark, the effect is rolled back.
    async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as publisher:
        await publisher.send(message)
        await asyncio.wait_for(publisher.outbox.wait_empty(), 20)  # the copy was confirmed too
    assert CALLS[config.name] == [7, 7]
    assert await database.values() == [7]


async def test_a_failing_effect_is_a_failed_attempt_retried_then_dead_lettered(durable):
    make, database = durable
    config = make()
    await database.execute("CREATE TABLE effects (value INTEGER NOT NULL)")
    settings = broker_settings(config)
    async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as publisher:
        dead_letters = BrokerSubscriber.from_config(config, [settings.dead_letter_topic], group="inspector")
        async with dead_letters:
            await publisher.send(BrokerMessageV1("durable.broken", BrokerMessageV1Payload(1)))
            letter = await asyncio.wait_for(dead_letters.receive(), 20)
            await asyncio.wait_for(publisher.outbox.wait_empty(), 20)
    assert letter.content["attempts"] == 2
    assert "no_such_table" in letter.content["error"]
    assert CALLS[config.name] == [1, 1]
    assert await database.values() == []
    assert await database.count("minos_inbox") == 1  # marked once dead-lettered: a copy is not handled again


async def test_a_plain_subscriber_confirms_what_it_receives(durable):
    make, database = durable
    config = make()
    async with (
        BrokerPort.broker_only(config),
        BrokerPublisher.from_config(config) as publisher,
        BrokerSubscriber.from_config(config, ["plain.topic"], group="reader") as subscriber,
    ):
        await publisher.send(BrokerMessageV1("plain.topic", BrokerMessageV1Payload("hello")))
        received = await asyncio.wait_for(subscriber.receive(), 20)
        await asyncio.wait_for(publisher.outbox.wait_empty(), 20)
    assert received.content == "hello"
    assert received.headers[OUTBOX_HEADER].startswith("_receipts.")
    assert await database.count("minos_outbox") == 0


async def test_an_unconfirmed_row_is_sent_again_after_resend_after_with_growing_intervals(durable):
    make, _ = durable
    config = make(resend_after=1000.0, max_resend_interval=4000.0)
    async with BrokerPort.broker_only(config), BrokerPublisher.from_config(config) as publisher:
        outbox = publisher.outbox
        await publisher.send(event(1))
        now = time.monotonic()
        assert outbox.resend_due(now) == 0  # not due yet
        assert outbox.resend_due(now + 1001) == 1  # due after resend_after
        assert outbox.resend_due(now + 1002) == 0  # next copy only after twice that
        assert outbox.resend_due(now + 1001 + 2001) == 1
        assert outbox.resend_due(now + 1001 + 2001 + 4001) == 1  # capped at max_resend_interval
        assert outbox.resend_due(now + 1001 + 2001 + 4001 + 4001) == 1
        assert outbox.resent == 4


def test_inbox_execute_outside_a_durable_handler_says_what_to_configure():
    with pytest.raises(NoInboxTransactionError, match=r"interfaces\.broker\.durable"):
        inbox_execute("INSERT INTO effects (value) VALUES (1)")


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ({"store": "mysql", "path": "x"}, "durable.store", "must be one of"),
        ({}, None, None),  # empty: not durable
        ({"resend_after": 1}, "durable.path", "path"),
        ({"store": "postgresql", "dsn": "mysql://x"}, "durable.dsn", "postgresql://"),
        ({"path": "x.sqlite", "schema": "bad schema"}, "durable.schema", "identifier"),
        ({"path": "x.sqlite", "resend_after": 0}, "durable.resend_after", "positive"),
        (
            {"path": "x.sqlite", "resend_after": 10, "max_resend_interval": 5},
            "durable.max_resend_interval",
            "at least",
        ),
        ({"path": "x.sqlite", "max_pending": "many"}, "durable.max_pending", "int"),
    ],
)
def test_bad_durable_settings_name_the_key(section, key, problem):
    config = Config({"name": "svc", "interfaces": {"broker": {"durable": section}}})
    if key is None:
        assert broker_settings(config).durable is None
        return
    with pytest.raises(ConfigError) as caught:
        broker_settings(config)
    assert key in str(caught.value)
    assert problem in str(caught.value)


def test_a_relative_sqlite_path_is_taken_from_the_config_files_folder(tmp_path):
    config_file = tmp_path / "service.yml"
    config_file.write_text("name: svc\ninterfaces:\n  broker:\n    durable:\n      path: var/svc.sqlite\n")
    settings = broker_settings(Config(config_file)).durable
    assert settings is not None
    assert settings.path == tmp_path / "var" / "svc.sqlite"


async def test_a_receipt_arriving_after_the_store_closed_is_ignored_and_the_row_kept(tmp_path):
    from minos.networks.durable import Outbox, OutboxRow, SqliteStore

    store = SqliteStore(tmp_path / "late.sqlite")
    outbox = Outbox(store, "late")
    sent: list[OutboxRow] = []
    await outbox.start(sent.append)
    row = OutboxRow(uuid4(), "late.topic", 0, b"body")
    await outbox.put(row)
    await outbox.stop()
    store.close()
    outbox.confirm([row.id])  # no error: the store is closed
    store.open()
    try:
        assert store.load_outbox("late") == [row]  # kept: it is sent again, and confirmed again, next time
    finally:
        store.close()
    assert sent == [row]


async def test_request_and_reply_clients_and_non_durable_publishers_keep_no_outbox(durable):
    from minos.networks import BrokerClient

    make, _ = durable
    config = make()
    client = BrokerClient.from_config(config)
    assert client.publisher.outbox is None  # a request whose reply is awaited times out instead
    assert BrokerPublisher.from_config(config, durable=False).outbox is None
    assert BrokerPublisher.from_config(config).outbox is not None


class PublicTableService:
    """Writes its effects to a table in PostgreSQL's ``public`` schema, unqualified, as most services do."""

    def __init__(self, config: Config) -> None:
        self.table = config.get_str("test.table")

    @enroute.broker.event("durable.public")
    async def record(self, request: Request) -> None:
        inbox_execute(f"INSERT INTO {self.table} (value) VALUES ($1)", (await request.content(),))


async def test_inbox_execute_finds_a_table_in_public_after_the_stores_schema(postgres_dsn, postgres_schema):
    table = f"effects_{uuid4().hex[:12]}"
    await query_postgres(postgres_dsn, "public", f"CREATE TABLE public.{table} (value INTEGER NOT NULL)")
    config = Config(
        {
            "name": f"public{uuid4().hex[:8]}",
            "interfaces": {
                "broker": {
                    "endpoint": f"inproc://public-{table}",
                    "durable": {"store": "postgresql", "dsn": postgres_dsn, "schema": postgres_schema},
                }
            },
            "services": [PublicTableService],
            "test": {"table": table},
        }
    )
    try:
        async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as publisher:
            for value in range(3):
                await publisher.send(BrokerMessageV1("durable.public", BrokerMessageV1Payload(value)))
            await asyncio.wait_for(publisher.outbox.wait_empty(), 20)
        rows = await query_postgres(
            postgres_dsn, "public", f"SELECT value FROM public.{table} ORDER BY value"
        )
        assert rows == [(0,), (1,), (2,)]
    finally:
        await query_postgres(postgres_dsn, "public", f"DROP TABLE IF EXISTS public.{table}")
