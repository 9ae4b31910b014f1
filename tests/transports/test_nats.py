"""NatsConnection beyond the contract: subjects, readiness, dead letters after max deliveries, reconnection."""

import asyncio
import dataclasses
import re
import shutil
import socket

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minos.common import Config, ConfigError
from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, Request, Response, enroute
from minos.networks.brokers import DeadLetter
from minos.networks.brokers.config import broker_settings, connection_factory
from minos.networks.protocol import FrameCodec
from minos.networks.system import ServiceRunner
from minos.networks.transports import BrokerUnavailableError, NatsConnection, NatsSettings
from minos.networks.transports.subjects import consumer_name, decode_topic, encode_topic, subject_of

from .nats_servers import PrivateServer

WAIT = 5.0  # seconds any single wait may take
_TOKEN = re.compile(r"[^.\s*>]+")


# Subjects --------------------------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=200))
def test_every_topic_becomes_a_valid_subject_and_comes_back(topic):
    subject = subject_of("minos", "u", topic)
    tokens = subject.split(".")
    assert all(_TOKEN.fullmatch(token) for token in tokens), subject
    assert decode_topic(subject.split(".", 2)[2]) == topic


@pytest.mark.parametrize(
    ("topic", "encoded"),
    [
        ("order.created", "order.created"),
        ("GetOrderReply-1", "GetOrderReply-1"),
        (".a..b.", "~2Ea~2E~2Eb~2E"),
        ("a b*>~", "a~20b~2A~3E~7E"),
        ("café", "caf~C3~A9"),
    ],
)
def test_topics_keep_their_dots_as_subject_tokens_and_escape_the_rest(topic, encoded):
    assert encode_topic(topic) == encoded
    assert decode_topic(encoded) == topic


def test_consumer_names_are_valid_and_tell_groups_and_topics_apart():
    names = {
        consumer_name("m", group, topic) for group in ("a", "a.b", "a b") for topic in ("x", "x.y", "x y")
    }
    assert len(names) == 9
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", name) and len(name) <= 80 for name in names)


def test_a_topic_too_long_for_a_subject_is_refused_with_the_limit():
    with pytest.raises(ValueError, match="over the 2048"):
        subject_of("minos", "u", "x" * 3000)


# Settings --------------------------------------------------------------------------------------------


def test_nats_settings_come_from_interfaces_broker_nats():
    config = Config(
        {
            "name": "orders",
            "interfaces": {
                "broker": {
                    "transport": "nats",
                    "max_messages": 500,
                    "nats": {"servers": "nats://a:4222, nats://b:4222", "stream": "ORDERS", "ack_wait": 10},
                }
            },
        }
    )
    settings = broker_settings(config)
    assert settings.nats == NatsSettings(
        servers=("nats://a:4222", "nats://b:4222"), stream="ORDERS", ack_wait=10.0, max_messages=500
    )
    assert not settings.embedded
    connect = connection_factory(config)
    connection = connect(on_delivery=None, window=10)
    assert isinstance(connection, NatsConnection)
    assert connection.dead_letter_topic == "orders.dead-letters"


@pytest.mark.parametrize(
    ("nats", "complaint"),
    [
        ({"servers": ["localhost"]}, "servers must be a non-empty list of URLs"),
        ({"servers": 4222}, r"'interfaces.broker.nats.servers'.*must be a list of URLs"),
        ({"stream": "a.b"}, "stream must be 1 to 64 letters"),
        ({"subject_prefix": "a.>"}, "subject_prefix must be dot-separated tokens"),
        ({"ack_wait": 0}, "ack_wait must be a positive number"),
        ({"max_deliveries": -1}, "max_deliveries must be 0"),
        ({"storage": "disk"}, "storage must be one of"),
    ],
)
def test_wrong_nats_settings_are_refused_naming_the_key(nats, complaint):
    config = Config({"name": "orders", "interfaces": {"broker": {"transport": "nats", "nats": nats}}})
    with pytest.raises(ConfigError, match=complaint):
        broker_settings(config)


def test_nats_has_no_embedded_broker():
    config = Config({"name": "x", "interfaces": {"broker": {"transport": "nats", "embedded": True}}})
    with pytest.raises(ConfigError, match="must be false"):
        broker_settings(config)


# Against a server ------------------------------------------------------------------------------------


class Inbox:
    """Records deliveries, acknowledging them unless ``auto_ack`` is off; ``await arrived(n)``."""

    def __init__(self, auto_ack: bool = True) -> None:
        self.auto_ack = auto_ack
        self.received: list = []
        self.connection: NatsConnection | None = None
        self._changed = asyncio.Event()

    def __call__(self, incoming) -> None:
        self.received.append(incoming)
        if self.auto_ack:
            self.connection.ack([incoming.tag])
        self._changed.set()

    async def arrived(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def connect():
    opened: list[NatsConnection] = []

    async def open_one(settings, inbox=None, **options) -> NatsConnection:
        connection = NatsConnection(settings, on_delivery=inbox, **options)
        if inbox is not None:
            inbox.connection = connection
        opened.append(connection)
        await connection.open()
        return connection

    yield open_one
    for connection in opened:
        await connection.close(timeout=1.0)


async def test_open_fails_with_a_hint_when_no_server_answers():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = NatsSettings(servers=(f"nats://127.0.0.1:{port}",), connect_timeout=1.0)
    connection = NatsConnection(settings)
    with pytest.raises(BrokerUnavailableError, match="nats-server -js"):
        await connection.open()
    assert not connection.connected


async def test_connected_is_true_only_while_open(nats_settings):
    connection = NatsConnection(nats_settings)
    assert not connection.connected
    await connection.open()
    try:
        assert connection.connected
    finally:
        await connection.close()
    assert not connection.connected


async def test_a_message_its_holders_never_acknowledge_goes_to_the_dead_letters_after_max_deliveries(
    nats_settings, connect
):
    settings = dataclasses.replace(nats_settings, max_deliveries=2)
    topic, dead = "job", "workers.dead-letters"
    crashing = []
    for _ in range(2):  # two holders in turn, each killed before acknowledging: two deliveries
        inbox = Inbox(auto_ack=False)
        holder = await connect(settings, inbox, dead_letter_topic=dead)
        await holder.subscribe("workers", [topic])
        if not crashing:
            publisher = await connect(settings)
            message = BrokerMessageV1(topic, BrokerMessageV1Payload({"n": 1}))
            await publisher.publish(topic, FrameCodec().encode(message)[1], 0)
        await inbox.arrived(1)
        crashing.append(inbox.received[0])
        await holder.abort()
    assert [incoming.redelivered for incoming in crashing] == [False, True]
    survivor_inbox = Inbox()
    survivor = await connect(settings, survivor_inbox, dead_letter_topic=dead)
    await survivor.subscribe("workers", [topic])
    letters = Inbox()
    reader = await connect(settings, letters)
    await reader.subscribe(dead, [dead])
    await letters.arrived(1)
    letter = DeadLetter.from_message(FrameCodec().decode([dead.encode(), letters.received[0].body]))
    assert (letter.topic, letter.identifier, letter.attempts) == (topic, message.identifier, 2)
    assert "delivered 3 times without being acknowledged" in letter.error
    assert letter.original() == message
    assert survivor_inbox.received == [], "the third delivery went to the dead letters, not to a handler"
    await until(lambda: survivor.dead_lettered == 1, "the PubAck of the dead letter")


async def test_an_acknowledgement_made_just_before_close_still_reaches_the_server(nats_settings, connect):
    inbox = Inbox(auto_ack=False)
    holder = await connect(nats_settings, inbox)
    await holder.subscribe("workers", ["job"])
    publisher = await connect(nats_settings)
    await publisher.publish("job", b"one", 0)
    await inbox.arrived(1)
    holder.ack([inbox.received[0].tag])  # it waits to go out with the next send, or within 2 ms ...
    await holder.close()  # ... and a close sends it at once, before the link goes
    client = await nats.connect(nats_settings.servers[0], allow_reconnect=False)
    try:
        jetstream = client.jetstream(timeout=WAIT)
        name = consumer_name("u", "", "job")
        async with asyncio.timeout(WAIT):  # a lost ack never moves the floor: the message would come back
            while (await jetstream.consumer_info(nats_settings.stream, name)).ack_floor.stream_seq < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # sync-ok: polling the server's state, which has no event
    finally:
        await client.close()


# Reconnection, against a server of the test's own ------------------------------------------------------


@pytest.fixture
def private_server(tmp_path, nats_server_url):
    # nats_server_url: the same rule as every NATS test, skip (or fail under CI) on a machine without NATS
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server is not on PATH; the reconnection test starts a server of its own")
    server = PrivateServer(tmp_path / "jetstream")
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_a_private_servers_port_stays_the_tests_while_the_server_is_down(private_server):
    """Let go, its port could be taken meanwhile (the source port of any connect(), a self-connect of a
    client dialing it included), and the server could not start again: see ``nats_servers.reserve_port``."""
    private_server.stop()
    with socket.socket() as other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", private_server.port))
    private_server.start()  # nats-server still binds it


async def until(condition, what: str) -> None:
    """Poll ``condition`` (a property with no event to wait on) until it holds, within WAIT."""
    # `connected` follows the NATS client's state, which has no event to wait on: look every 20 ms.
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (see above)
            await asyncio.sleep(0.02)  # sync-ok: polling a state with no event, bounded by WAIT
    assert condition(), what


async def test_the_connection_reconnects_resumes_its_consumers_and_resends_what_was_not_accepted(
    private_server, connect
):
    settings = NatsSettings(
        servers=(private_server.url,), stream="RECONNECT", subject_prefix="reconnect", ack_wait=1.0,
        reconnect_max_wait=0.2, pull_expires=0.5, connect_timeout=2.0,
    )  # fmt: skip
    inbox = Inbox(auto_ack=False)
    subscriber = await connect(settings, inbox)
    await subscriber.subscribe("orders", ["order.created"])
    publisher = await connect(settings)
    await publisher.publish("order.created", b"before", 0)
    await inbox.arrived(1)

    private_server.stop()
    await until(lambda: not subscriber.connected and not publisher.connected, "both to notice the loss")
    pending = publisher.publish_nowait("order.created", b"during", 0)
    private_server.start()
    await until(lambda: subscriber.connected and publisher.connected, "both to come back")
    await asyncio.wait_for(pending, WAIT)  # sent again once reconnected, accepted by the stream

    subscriber.ack([inbox.received[0].tag])  # a tag from before the outage still acknowledges
    await inbox.arrived(2)
    assert inbox.received[1].body == b"during"
    inbox.auto_ack = True
    subscriber.ack([inbox.received[1].tag])
    await publisher.publish("order.created", b"after", 0)
    await inbox.arrived(3)
    assert [incoming.body for incoming in inbox.received] == [b"before", b"during", b"after"]


class _Orders:
    @enroute.broker.command("order.create")
    async def create(self, request: Request) -> Response:
        return Response(await request.content())


def test_a_nats_service_says_it_is_ready_on_the_nats_servers():
    config = Config(
        {
            "name": "orders",
            "interfaces": {
                "broker": {"transport": "nats", "nats": {"servers": ["nats://a:4222", "nats://b:4222"]}}
            },
            "services": [_Orders],
        }
    )
    assert "broker=nats://a:4222,nats://b:4222" in ServiceRunner.from_config(config).describe()
