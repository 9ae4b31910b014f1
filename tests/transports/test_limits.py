"""Limits and hostile peers: oversized frames, and fuzzed frames sent to the broker and to a service."""

import asyncio
import random
import struct
import uuid

import pytest
import zmq
import zmq.asyncio

from minos.networks.exceptions import FrameEncodeError
from minos.networks.transports.wire import MALFORMED_CUTOFF, PROTOCOL_VERSION, RECORD_HEAD, iter_records

from ..conftest import welcome_peer

TIMEOUT = 4.0
FUZZ_FRAMES = 10_000
HELLO_EVERY = 50  # the fuzzer says HELLO again this often, so that it is parsed as a known peer again
BIG_FRAME = 64 * 1024 * 1024


async def wait_until(condition, ping) -> None:
    """Await ``ping()`` (a round trip to the broker) until ``condition()`` holds, for at most TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await ping()


# Sender side ----------------------------------------------------------------------------------------


async def test_an_oversized_body_is_refused_at_the_sender_with_a_clear_error(broker_threads, connect):
    broker = broker_threads("tcp://127.0.0.1:0")
    publisher = await connect(broker.endpoint, max_frame_size=1024)
    with pytest.raises(FrameEncodeError) as refused:
        publisher.publish_nowait("order.created", b"x" * 1025, 0)
    assert "1025 bytes, over the max_frame_size of 1024 bytes" in str(refused.value)
    with pytest.raises(FrameEncodeError, match="max_frame_size"):
        await publisher.publish("order.created", b"x" * 2000, 0)
    await publisher.publish("order.created", b"x" * 1024, 0)  # the limit itself is fine
    assert broker.server.stats.published == 1


# Receiving side: the broker -------------------------------------------------------------------------


async def test_a_peer_sending_a_64_mib_frame_is_cut_off_and_other_peers_lose_nothing(
    make_inbox, broker_threads, connect, async_sockets
):
    broker = broker_threads("tcp://127.0.0.1:0", heartbeat_interval=0.05)
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox)).subscribe("orders", ["order.created"])
    publisher = await connect(broker.endpoint)
    giant = async_sockets(zmq.DEALER)
    giant.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
    giant.setsockopt(zmq.RECONNECT_IVL, -1)  # once cut off, it stays off
    monitor = giant.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        giant.connect(broker.endpoint)
        await giant.send_multipart([b"HELLO", struct.pack(">H", 1)])
        async with asyncio.timeout(TIMEOUT):
            assert (await giant.recv_multipart())[0] == b"WELCOME"
        body = bytes(BIG_FRAME)
        sending = asyncio.ensure_future(
            giant.send_multipart([b"PUB", RECORD_HEAD.pack(1, 0, 13, len(body)) + b"order.created" + body])
        )
        expected = [f"order {index}".encode() for index in range(200)]
        await asyncio.gather(*(publisher.publish("order.created", body, 0) for body in expected))
        async with asyncio.timeout(TIMEOUT):
            event = await monitor.recv_multipart()  # the fault really happened: the broker hung up
        assert struct.unpack("=H", event[0][:2])[0] == zmq.EVENT_DISCONNECTED
        await sending
        await inbox.wait_for(expected[-1])
        assert inbox.bodies == expected
        assert broker.server.stats.published == len(expected)  # the giant PUB was never taken
        # The broker found the peer gone (a heartbeat could not be routed), while the others stay.
        await wait_until(
            lambda: broker.server.stats.lost_peers >= 1, lambda: publisher.publish("ping", b"", 0)
        )
        assert broker.server.stats.peers == 2
    finally:
        giant.disable_monitor()
        monitor.close(linger=0)


def broker_accepts(frames: list[bytes]) -> bool:
    """Whether the broker would handle ``frames`` from a peer it knows (the wire rules, restated)."""
    command, count = frames[0], len(frames)
    if command in (b"HB", b"BYE"):
        return True
    if command == b"HELLO":
        return count == 2 and len(frames[1]) == 2
    if command == b"ACK":
        return count == 2 and len(frames[1]) > 0 and len(frames[1]) % 8 == 0
    if command == b"PUB":  # records, and maybe (sequence, tag) pairs of acknowledgements
        if count == 3 and not (frames[2] and len(frames[2]) % 16 == 0):
            return False
        if count not in (2, 3):
            return False
        try:
            return all(strategy <= 1 for _, strategy, _, _ in iter_records(frames[1]))
        except ValueError:
            return False
    if command == b"SUB":
        if count < 4 or len(frames[1]) != 13:
            return False
        _, window, transient = struct.unpack(">QIB", frames[1])
        return window >= 1 and transient <= 1 and all(frames[2:])
    return False


def service_accepts(frames: list[bytes]) -> bool:
    """Whether a ZmqConnection would handle ``frames`` from its broker (the wire rules, restated)."""
    command, count = frames[0], len(frames)
    parts = {b"MSG": 2, b"PUBOK": 2, b"PUBNO": 2, b"HB": 1, b"SUBOK": 2, b"WELCOME": 2, b"RESET": 1}
    if parts.get(command) != count:
        return False
    if command in (b"PUBOK", b"PUBNO"):
        return len(frames[1]) > 0 and len(frames[1]) % 8 == 0
    if command == b"SUBOK":
        return len(frames[1]) == 8
    if command == b"WELCOME":
        return (
            len(frames[1]) == 6
            and struct.unpack(">HI", frames[1])[0] == PROTOCOL_VERSION
            and frames[1][2:] != bytes(4)
        )
    if command == b"MSG":
        try:
            list(iter_records(frames[1]))
        except ValueError:
            return False
    return True


def mutated_frames(rng: random.Random, templates: list[list[bytes]], accepts, count: int):
    """``count`` random or mutated multipart messages, none of which ``accepts`` takes."""
    made = 0
    while made < count:
        frames = [bytearray(part) for part in rng.choice(templates)]
        for _ in range(rng.randint(1, 3)):
            how = rng.randrange(7)
            part = frames[rng.randrange(len(frames))]
            if how == 0 and part:
                part[rng.randrange(len(part))] ^= 1 << rng.randrange(8)  # flip a bit
            elif how == 1 and part:
                del part[rng.randrange(len(part)) :]  # cut short
            elif how == 2:
                part += rng.randbytes(rng.randint(1, 40))  # trailing garbage
            elif how == 3 and len(frames) > 1:
                del frames[rng.randrange(len(frames))]  # a part too few
            elif how == 4:
                frames.insert(rng.randrange(len(frames) + 1), bytearray(rng.randbytes(rng.randint(0, 20))))
            elif how == 5:
                frames = [bytearray(rng.randbytes(rng.randint(0, 64))) for _ in range(rng.randint(1, 4))]
            elif part:
                part[rng.randrange(len(part))] = rng.randrange(256)  # overwrite a byte
        message = [bytes(part) for part in frames]
        if not accepts(message):
            made += 1
            yield message


async def test_fuzzed_frames_sent_to_the_broker_are_rejected_and_counted_and_it_serves_on(
    make_inbox, broker_threads, connect, async_sockets
):
    # Heartbeats slower than the fuzzing, which keeps this loop (and the good clients in it) busy.
    broker = broker_threads("tcp://127.0.0.1:0", heartbeat_interval=1.0)
    inbox = make_inbox()
    await (await connect(broker.endpoint, inbox, heartbeat_interval=1.0)).subscribe(
        "orders", ["order.created"]
    )
    publisher = await connect(broker.endpoint, heartbeat_interval=1.0)
    fuzzer = async_sockets(zmq.DEALER)
    fuzzer.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
    fuzzer.connect(broker.endpoint)
    hello = [b"HELLO", struct.pack(">H", 1)]
    # Records before a broken one in the same PUB frame are published: their topic is not the inbox's.
    record = RECORD_HEAD.pack(7, 0, 13, 5) + b"fuzz.topic.00hello"
    templates = [
        hello,
        [b"SUB", struct.pack(">QIB", 1, 10, 0), b"orders", b"order.created"],
        [b"PUB", record + record],
        [b"PUB", record, struct.pack(">4Q", 7, 1, 0, 2)],  # with acknowledgements riding along
        [b"ACK", struct.pack(">2Q", 1, 2)],
        [b"HB"],
        [b"BYE"],
        [b"MSG", record],
    ]
    rng = random.Random(20240611)
    for index, frames in enumerate(mutated_frames(rng, templates, broker_accepts, FUZZ_FRAMES)):
        if index % HELLO_EVERY == 0:
            await fuzzer.send_multipart(hello)
        await fuzzer.send_multipart(frames)

    def rejected() -> int:
        stats = broker.server.stats
        return stats.malformed + stats.ignored

    await wait_until(lambda: rejected() >= FUZZ_FRAMES, lambda: publisher.publish("ping", b"", 0))
    assert rejected() == FUZZ_FRAMES  # every one counted, none handled
    assert broker.server.stats.cut_off_peers >= 1  # the fuzzer was cut off (and came back with HELLO)
    assert broker.server.stats.malformed >= MALFORMED_CUTOFF
    await publisher.publish("order.created", b"still serving", 0)
    await inbox.wait_for(b"still serving", timeout=1.0)
    assert inbox.bodies == [b"still serving"]


# Receiving side: a service --------------------------------------------------------------------------


async def test_fuzzed_frames_sent_to_a_service_are_counted_and_ignored_and_it_receives_on(
    make_inbox, connect, async_sockets
):
    fake_broker = async_sockets(zmq.ROUTER)
    # A ROUTER drops what it cannot queue for a slow peer; queue everything, so every fuzzed frame arrives.
    fake_broker.setsockopt(zmq.SNDHWM, 0)
    fake_broker.bind("tcp://127.0.0.1:0")
    endpoint = fake_broker.getsockopt_string(zmq.LAST_ENDPOINT)
    inbox = make_inbox()

    async with asyncio.timeout(TIMEOUT):
        peer, connection = await asyncio.gather(
            welcome_peer(fake_broker), connect(endpoint, inbox, heartbeat_interval=1.0)
        )
    record = RECORD_HEAD.pack(1, 0, 13, 5) + b"order.createdhello"
    templates = [
        [b"MSG", record + record],
        [b"PUBOK", struct.pack(">2Q", 1, 2)],
        [b"PUBNO", struct.pack(">Q", 3)],
        [b"SUBOK", struct.pack(">Q", 1)],
        [b"WELCOME", struct.pack(">HI", 1, 50)],
        [b"HB"],
        [b"RESET"],
    ]
    rng = random.Random(20240612)
    for frames in mutated_frames(rng, templates, service_accepts, FUZZ_FRAMES):
        await fake_broker.send_multipart([peer, *frames])
    valid = RECORD_HEAD.pack(99, 0, 13, 11) + b"order.createdstill works"
    await fake_broker.send_multipart([peer, b"MSG", valid])
    await inbox.wait_for(b"still works", timeout=1.0)  # sent last: everything before it was handled
    assert connection.malformed == FUZZ_FRAMES
    assert connection.connected
    await connection.close(timeout=1.0)  # while the fake broker is still there to take the acknowledgements
