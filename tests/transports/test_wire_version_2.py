"""Wire version 2: acknowledgements ride on a PUB, and a reply's acknowledgement applies as it is accepted;
brokers serve version 1 clients too, and a client tells an older broker apart from a missing one.

A dispatcher's reply and the acknowledgement of the request it answers travel in one frame: the broker
acknowledges the request when, and only if, it accepts the reply (see ``wire``). Played with raw peers
against a real BrokerServer, and with a fake broker against a real ZmqConnection.
"""

import asyncio
import struct
import uuid

import pytest
import zmq

from minos.networks.transports import BrokerUnavailableError, ZmqConnection, broker_server
from minos.networks.transports.wire import PROTOCOL_VERSION, RECORD_HEAD, WELCOME_HEAD, pack_u64s

from ..conftest import welcome_peer

TIMEOUT = 5.0


def inproc() -> str:
    return f"inproc://minos-test-{uuid.uuid4().hex}"


def record(sequence: int, topic: bytes, body: bytes) -> bytes:
    return RECORD_HEAD.pack(sequence, 0, len(topic), len(body)) + topic + body


def first_tag(frames: list[bytes]) -> int:
    return RECORD_HEAD.unpack_from(frames[1])[0]


async def test_a_pub_acknowledges_its_request_as_the_broker_accepts_the_reply(
    broker_threads, raw_peers, connect
):
    broker = broker_threads(inproc())
    handler = raw_peers(broker.endpoint)
    handler.send(b"HELLO", struct.pack(">H", 2))
    await handler.expect(b"WELCOME")
    await handler.subscribe(b"orders", b"order.get", window=1)
    publisher = await connect(broker.endpoint)
    for order in (b"order 7", b"order 8"):
        publisher.publish_nowait("order.get", order, 0)
    first = first_tag(await handler.expect(b"MSG"))
    # Sequence 5 is not a record of this frame: its pair is not applied.
    handler.send(b"PUB", record(1, b"reply.x", b"found"), pack_u64s([1, first, 5, first + 1]))
    # A window of one: the second request comes because the first was acknowledged. Deliveries leave
    # before the receipts of the same turn.
    delivered, receipt = await handler.until(b"PUBOK")
    assert (delivered[0], struct.unpack(">Q", receipt[1])) == (b"MSG", (1,))
    second = first_tag(delivered)
    assert (broker.server.stats.acknowledged, broker.server.stats.unknown_acks) == (1, 0)
    handler.send(b"PUB", record(2, b"reply.x", b"found"), pack_u64s([0, second]))  # sequence 0: unconditional
    await handler.expect(b"PUBOK")
    assert (broker.server.stats.acknowledged, broker.server.stats.unknown_acks) == (2, 0)


async def test_a_refused_reply_leaves_its_request_unacknowledged(broker_threads, raw_peers, connect):
    broker = broker_threads(inproc(), max_messages=1)  # the request in flight fills it
    handler = raw_peers(broker.endpoint)
    handler.send(b"HELLO", struct.pack(">H", 2))
    await handler.expect(b"WELCOME")
    await handler.subscribe(b"orders", b"order.get", window=1)
    publisher = await connect(broker.endpoint)
    publisher.publish_nowait("order.get", b"order 7", 0)
    tag = first_tag(await handler.expect(b"MSG"))
    handler.send(b"PUB", record(1, b"reply.x", b"found"), pack_u64s([1, tag]))
    assert struct.unpack(">Q", (await handler.expect(b"PUBNO"))[1]) == (1,)
    assert broker.server.stats.acknowledged == 0
    handler.send(b"ACK", pack_u64s([tag]))  # still the handler's to acknowledge
    handler.send(b"SUB", struct.pack(">QIB", 2, 1, 0), b"orders", b"order.other")
    await handler.expect(b"SUBOK")  # frames are handled in order: the ACK was
    assert broker.server.stats.acknowledged == 1


async def test_acknowledgements_that_are_not_pairs_make_the_pub_malformed(broker_threads, raw_peers):
    broker = broker_threads(inproc())
    peer = raw_peers(broker.endpoint)
    await peer.hello()
    peer.send(b"PUB", record(1, b"order.created", b"x"), pack_u64s([1]))
    peer.send(b"SUB", struct.pack(">QIB", 1, 1, 0), b"orders", b"order.created")
    answers = await peer.until(b"SUBOK")
    assert [frames[0] for frames in answers] == [b"SUBOK"]  # no PUBOK
    assert (broker.server.stats.malformed, broker.server.stats.published) == (1, 0)


async def test_a_broker_welcomes_a_version_1_client_in_version_1(broker_threads, raw_peers):
    broker = broker_threads(inproc())
    for version in (1, 2):
        peer = raw_peers(broker.endpoint)
        peer.send(b"HELLO", struct.pack(">H", version))
        welcome = await peer.expect(b"WELCOME")
        assert WELCOME_HEAD.unpack(welcome[1])[0] == version
    assert broker.server.stats.peers == 2


async def test_a_reply_carries_its_acknowledgement_but_not_into_the_next_session(async_sockets, connect):
    fake_broker = async_sockets(zmq.ROUTER)
    fake_broker.bind("inproc://acks-with-publishes")
    settled: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    class Answer:
        """Replies to each delivery, the reply carrying the delivery's acknowledgement."""

        connection = None

        def __call__(self, incoming) -> None:
            self.connection.publish_settled("reply.x", b"found", 0, settled.set_result, incoming.tag)

    async def next_command(command: bytes) -> list[bytes]:
        while True:
            frames = await fake_broker.recv_multipart()
            if frames[1] == command:
                return frames

    async with asyncio.timeout(TIMEOUT):
        peer, connection = await asyncio.gather(
            welcome_peer(fake_broker),
            connect("inproc://acks-with-publishes", Answer(), heartbeat_interval=1.0),
        )
        assert PROTOCOL_VERSION == 2
        await fake_broker.send_multipart([peer, b"MSG", record(41, b"order.get", b"order 7")])
        pub = await next_command(b"PUB")
        assert struct.unpack(">2Q", pub[3]) == (1, 41)  # (the reply's sequence, the request's tag)
        # The broker forgot this peer: the reply goes again in a new session, its acknowledgement not
        # (the request went back to its group when the session ended).
        await fake_broker.send_multipart([peer, b"RESET"])
        second_peer = await welcome_peer(fake_broker)
        resent = await next_command(b"PUB")
        assert second_peer != peer
        assert len(resent) == 3
        assert resent[2] == pub[2]
        await fake_broker.send_multipart([second_peer, b"PUBOK", pack_u64s([1])])
        assert await settled is None
    await connection.close(timeout=0.1)


async def test_a_client_says_why_an_older_broker_does_not_welcome_it(
    broker_threads, zmq_context, monkeypatch
):
    # A broker of the previous release: version 1 only. It ignores the HELLO and resets what follows.
    monkeypatch.setattr(broker_server, "BROKER_VERSIONS", frozenset({1}))
    broker = broker_threads(inproc())
    connection = ZmqConnection(
        broker.endpoint, context=zmq_context, heartbeat_interval=0.05, connect_timeout=1.0
    )
    with pytest.raises(
        BrokerUnavailableError, match=r"answered but did not welcome .* upgrade the broker first"
    ):
        await connection.open()
    assert broker.server.stats.peers == 0
