"""BrokerServer and ZmqConnection specifics: heartbeats, unreachable peers, malformed frames, restarts."""

import asyncio
import logging
import random
import socket
import struct
import time
import uuid
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from minos.networks.transports import (
    BrokerBindError,
    BrokerServer,
    BrokerUnavailableError,
    ConnectionClosedError,
    ZmqConnection,
)
from minos.networks.transports.wire import RECORD_HEAD, pack_u64s

TIMEOUT = 5.0


def inproc() -> str:
    return f"inproc://minos-test-{uuid.uuid4().hex}"


def port_below_the_ephemeral_range() -> int:
    """A free tcp port that the kernel never picks as a source port: while a broker on an ephemeral port
    is down, a client reconnecting to it may be given that very port and connect to itself (TCP
    self-connect), and the broker could not bind it again."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    for port in random.sample(range(max(1024, low - 10_000), low), 100):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found below {low}")


async def test_a_silent_peer_is_declared_lost_and_what_it_held_is_redelivered(
    make_inbox, broker_threads, raw_peers, connect
):
    broker = broker_threads(inproc(), heartbeat_interval=0.05)
    silent = raw_peers(broker.endpoint)
    await silent.hello()
    await silent.subscribe(b"orders", b"order.created")
    publisher = await connect(broker.endpoint)
    await publisher.publish("order.created", b"order 1", 0)
    delivered = await silent.expect(b"MSG")
    _, redelivered, _, _ = RECORD_HEAD.unpack_from(delivered[1])
    assert (redelivered, delivered[1][RECORD_HEAD.size :]) == (0, b"order.createdorder 1")
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox)).subscribe("orders", ["order.created"])
    # The silent peer keeps its socket open, so only the heartbeat timeout can find it out.
    await inbox.arrived(1)
    assert [(m.body, m.redelivered) for m in inbox.received] == [(b"order 1", True)]
    assert broker.server.stats.lost_peers == 1


async def test_a_peer_whose_connection_is_gone_is_lost_at_the_first_send_that_fails(
    make_inbox, broker_threads, raw_peers, connect, caplog
):
    caplog.set_level(logging.INFO, logger="minos.networks.transports.broker")
    broker = broker_threads(inproc(), heartbeat_interval=0.2)
    crashed = raw_peers(broker.endpoint)
    await crashed.hello()
    await crashed.subscribe(b"orders", b"order.created")
    publisher = await connect(broker.endpoint)
    await publisher.publish("order.created", b"order 1", 0)
    await crashed.expect(b"MSG")
    crashed.close()  # no BYE
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox)).subscribe("orders", ["order.created"])
    await inbox.arrived(1)
    assert inbox.received[0].redelivered
    # Found by a heartbeat that could not be routed (ROUTER_MANDATORY), before three silent intervals.
    assert "is unreachable" in caplog.text
    assert "silent for" not in caplog.text


async def test_malformed_frames_are_counted_and_ignored(make_inbox, broker_threads, raw_peers, connect):
    broker = broker_threads(inproc())
    stranger = raw_peers(broker.endpoint)
    stranger.send(b"NOPE")  # unknown command from an unknown peer
    await stranger.hello()
    malformed = [
        [b"NOPE", b"x"],
        [b"PUB"],
        [b"PUB", b"\x00" * 5],  # a record cut short
        [b"PUB", RECORD_HEAD.pack(1, 0, 5, 100) + b"topic"],  # a body cut short
        [b"PUB", RECORD_HEAD.pack(1, 7, 1, 0) + b"t"],  # no such strategy
        [b"SUB", b"short", b"group", b"topic"],
        [b"SUB", struct.pack(">QIB", 1, 0, 0), b"group", b"topic"],  # window 0
        [b"ACK", b"1234567"],
        [b"HELLO", b"x"],
        [b"MSG", b"only the broker sends this"],
    ]
    for frames in malformed:
        stranger.send(*frames)
    await stranger.subscribe(b"orders", b"order.created")  # handled after the garbage, in order
    assert broker.server.stats.malformed == len(malformed) + 1
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox)).subscribe("audit", ["order.created"])
    await (await connect(broker.endpoint)).publish("order.created", b"still working", 1)
    await inbox.arrived(1)
    assert inbox.bodies == [b"still working"]


async def test_names_that_are_not_utf8_and_a_hello_of_another_version_are_refused_as_malformed(
    broker_threads, raw_peers
):
    broker = broker_threads(inproc())
    other_release = raw_peers(broker.endpoint)
    other_release.send(b"HELLO", struct.pack(">H", 3))
    other_release.send(b"HB")
    assert await other_release.until(b"RESET") == [[b"RESET"]]  # no WELCOME: it is not a peer
    peer = raw_peers(broker.endpoint)
    await peer.hello()
    peer.send(b"SUB", struct.pack(">QIB", 1, 10, 0), b"\xffgroup", b"order.created")
    peer.send(b"SUB", struct.pack(">QIB", 2, 10, 0), b"orders", b"order.created", b"order.\xc3")
    peer.send(b"PUB", RECORD_HEAD.pack(1, 0, 2, 4) + b"\xfe\xffbody")
    # The broker handles a peer's frames in order: whatever it answered to those came before this SUBOK.
    peer.send(b"SUB", struct.pack(">QIB", 3, 10, 0), b"orders", b"order.paid")
    answers = await peer.until(b"SUBOK")

    assert answers == [[b"SUBOK", struct.pack(">Q", 3)]]  # no SUBOK 1 or 2, no PUBOK
    assert broker.server.stats.malformed == 4
    assert broker.server.stats.published == 0
    assert broker.server.stats.peers == 1


async def test_an_unknown_peer_is_told_to_reset_instead_of_served(broker_threads, raw_peers):
    broker = broker_threads(inproc())
    stranger = raw_peers(broker.endpoint)
    stranger.send(b"PUB", RECORD_HEAD.pack(1, 0, 1, 1) + b"tb")
    stranger.send(b"HB")
    await stranger.expect(b"RESET")
    await stranger.hello()
    assert broker.server.stats.published == 0


async def test_a_publisher_keeps_its_order_through_refusals_by_a_full_broker(
    make_inbox, broker_threads, connect
):
    broker = broker_threads(inproc(), max_messages=10)
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox, window=4)).subscribe("audit", ["order.created"])
    publisher = await connect(broker.endpoint)
    sent = [b"order %d" % i for i in range(500)]
    accepted = [publisher.publish_nowait("order.created", body, 0) for body in sent]
    await asyncio.wait_for(asyncio.gather(*accepted), TIMEOUT)
    await inbox.arrived(500)
    assert inbox.bodies == sent
    assert broker.server.stats.refused > 0


async def test_a_connection_comes_back_after_the_broker_restarts_on_the_same_endpoint(
    make_inbox, broker_threads, connect
):
    endpoint = f"tcp://127.0.0.1:{port_below_the_ephemeral_range()}"
    first_context = zmq.Context()  # of its own, so that terminating it waits until its port is free again
    first = broker_threads(endpoint, heartbeat_interval=0.05, context=first_context)
    try:
        inbox = make_inbox()
        subscriber = await connect(endpoint, inbox)
        await subscriber.subscribe("orders", ["order.created"])
        publisher = await connect(endpoint)
        await publisher.publish("order.created", b"before", 0)
        await inbox.arrived(1)
    finally:
        first.stop()
        first_context.term()  # ZeroMQ closes listeners in its I/O thread, after close() returned
    accepted = publisher.publish_nowait("order.created", b"during", 0)
    second = broker_threads(endpoint, heartbeat_interval=0.05)
    await asyncio.wait_for(accepted, TIMEOUT)  # resent to the new broker once the publisher reconnected
    await inbox.arrived(2)  # the subscriber subscribed again on its own
    assert inbox.bodies == [b"before", b"during"]
    assert second.server.stats.peers == 2


async def test_open_names_the_endpoint_when_no_broker_answers(zmq_context):
    connection = ZmqConnection("tcp://127.0.0.1:9", context=zmq_context, connect_timeout=0.2)
    with pytest.raises(BrokerUnavailableError, match=r"tcp://127\.0\.0\.1:9"):
        await connection.open()
    with pytest.raises(ConnectionClosedError):
        connection.publish_nowait("order.created", b"x", 0)


async def test_close_is_bounded_when_the_broker_is_gone_and_fails_what_it_never_accepted(
    broker_threads, connect
):
    broker = broker_threads(inproc())
    publisher = await connect(broker.endpoint)
    broker.stop()
    accepted = publisher.publish_nowait("order.created", b"lost", 0)
    started = time.monotonic()
    await publisher.close(timeout=0.3)
    assert time.monotonic() - started < 2.0
    with pytest.raises(ConnectionClosedError, match=r"order\.created"):
        await accepted


async def test_binding_an_endpoint_in_use_says_which(zmq_context, broker_threads):
    broker = broker_threads("tcp://127.0.0.1:0")
    with pytest.raises(BrokerBindError, match=broker.endpoint.replace(".", r"\.")):
        await BrokerServer(broker.endpoint, context=zmq_context).run()


async def test_acknowledgements_go_out_packed_and_free_the_window(broker_threads, raw_peers, connect):
    broker = broker_threads(inproc())
    consumer = raw_peers(broker.endpoint)
    await consumer.hello()
    await consumer.subscribe(b"orders", b"order.created", window=3)
    publisher = await connect(broker.endpoint)
    for i in range(6):
        publisher.publish_nowait("order.created", b"%d" % i, 0)
    tags = []
    while len(tags) < 3:
        records = (await consumer.expect(b"MSG"))[1]
        offset = 0
        while offset < len(records):
            tag, _, topic_size, body_size = RECORD_HEAD.unpack_from(records, offset)
            offset += RECORD_HEAD.size + topic_size + body_size
            tags.append(tag)
    assert len(tags) == 3  # the window
    consumer.send(b"ACK", pack_u64s(tags))
    await consumer.expect(b"MSG")  # more credit, more messages
    assert broker.server.stats.acknowledged == 3


async def test_large_bodies_travel_whole_and_in_order_across_several_frames(
    make_inbox, broker_threads, connect
):
    broker = broker_threads(inproc())
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox)).subscribe("archive", ["document.stored"])
    publisher = await connect(broker.endpoint)
    sent = [bytes([i]) * 300_000 for i in range(12)]  # more than one PUB and one MSG frame can take
    accepted = [publisher.publish_nowait("document.stored", body, 0) for body in sent]
    await asyncio.wait_for(asyncio.gather(*accepted), TIMEOUT)
    await inbox.arrived(12)
    assert inbox.bodies == sent
