"""BrokerPublisher lets at most ``max_in_flight`` sends await the broker's acceptance at once.

Played against a fake broker (a ROUTER socket of the test's own) that accepts publishes only when the
test says so, so the sends in flight stay in flight for as long as the test needs.
"""

import asyncio
import struct
from functools import partial

import pytest
import zmq
import zmq.asyncio

from minos.common import Config, ConfigError
from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, BrokerPublisher
from minos.networks.transports import (
    BrokerFullError,
    BrokerUnavailableError,
    ConnectionClosedError,
    ZmqConnection,
)
from minos.networks.transports.wire import iter_records

from ..conftest import welcome_peer

WAIT = 5.0


class FakeBroker:
    """Welcomes one client, records its publishes, and accepts them only on ``accept``."""

    def __init__(self, context: zmq.asyncio.Context, endpoint: str) -> None:
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.peer = b""
        self.published: list[tuple[int, bytes]] = []  # (sequence, body)

    async def welcome(self) -> None:
        self.peer = await welcome_peer(self.socket)

    async def published_count(self, count: int) -> None:
        """Read frames until ``count`` publishes have arrived in all."""
        while len(self.published) < count:
            _, command, *rest = await self.socket.recv_multipart()
            if command == b"PUB":
                self.published += [(sequence, body) for sequence, _, _, body in iter_records(rest[0])]

    async def accept(self, *sequences: int) -> None:
        await self.socket.send_multipart(
            [self.peer, b"PUBOK", struct.pack(f">{len(sequences)}Q", *sequences)]
        )

    def close(self) -> None:
        self.socket.close(linger=0)


@pytest.fixture
async def fake_broker(zmq_context):
    # inproc needs one context: the fake broker's asyncio socket shares the connection's plain one.
    broker = FakeBroker(zmq.asyncio.Context.shadow(zmq_context.underlying), "inproc://publisher-bound")
    yield broker
    broker.close()


@pytest.fixture
async def publisher(zmq_context, fake_broker):
    connect = partial(ZmqConnection, "inproc://publisher-bound", context=zmq_context, heartbeat_interval=1.0)
    publisher = BrokerPublisher(connect, name="bounded", max_in_flight=2, close_timeout=0.2)
    async with asyncio.timeout(WAIT):
        await asyncio.gather(fake_broker.welcome(), publisher.start())
    yield publisher
    await publisher.stop(timeout=0.5)


def event(number: int) -> BrokerMessageV1:
    return BrokerMessageV1("order.created", BrokerMessageV1Payload(number))


async def test_a_third_send_waits_until_one_of_two_in_flight_is_accepted(fake_broker, publisher):
    first = asyncio.create_task(publisher.send(event(1)))
    second = asyncio.create_task(publisher.send(event(2)))
    async with asyncio.timeout(WAIT):
        await fake_broker.published_count(2)
    third = asyncio.create_task(publisher.send(event(3)))
    await asyncio.sleep(0)  # sync-ok: one loop turn, so the third send reaches its wait
    assert not third.done()
    assert await fake_broker.socket.poll(timeout=100) == 0  # and nothing more reached the broker

    with pytest.raises(BrokerFullError, match="2 messages already await the broker"):
        await publisher.send_nowait(event(4))

    async with asyncio.timeout(WAIT):
        await fake_broker.accept(1)
        await first
        await fake_broker.published_count(3)  # the third went out once the first was accepted
        await fake_broker.accept(2, 3)
        await asyncio.gather(second, third)
    assert [sequence for sequence, _ in fake_broker.published] == [1, 2, 3]


async def test_stopping_fails_the_sends_still_waiting_for_room(fake_broker, publisher):
    in_flight = [asyncio.create_task(publisher.send(event(number))) for number in (1, 2)]
    async with asyncio.timeout(WAIT):
        await fake_broker.published_count(2)
    waiting = asyncio.create_task(publisher.send(event(3)))
    await asyncio.sleep(0)  # sync-ok: one loop turn, so the third send reaches its wait
    assert not waiting.done()

    await publisher.stop(timeout=0.1)

    outcomes = await asyncio.gather(*in_flight, waiting, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionClosedError) for outcome in outcomes), outcomes


async def test_a_send_not_accepted_within_send_timeout_fails_naming_the_broker(zmq_context, fake_broker):
    connect = partial(ZmqConnection, "inproc://publisher-bound", context=zmq_context, heartbeat_interval=1.0)
    publisher = BrokerPublisher(connect, name="impatient", send_timeout=0.3, close_timeout=0.2)
    async with asyncio.timeout(WAIT):
        await asyncio.gather(fake_broker.welcome(), publisher.start())
    try:
        with pytest.raises(
            BrokerUnavailableError,
            match=r"'inproc://publisher-bound'.*'order\.created' within the send_timeout",
        ):
            await publisher.send(event(1))  # the fake broker never accepts it
        sending = asyncio.create_task(publisher.send(event(2)))
        async with asyncio.timeout(WAIT):
            await fake_broker.published_count(2)
            await fake_broker.accept(fake_broker.published[1][0])
            await sending  # an accepted send still returns: the timeout bounds the wait, not the publisher
    finally:
        await publisher.stop(timeout=0.5)


def test_send_timeout_must_be_positive():
    with pytest.raises(ValueError, match="send_timeout must be a positive number of seconds or None"):
        BrokerPublisher(partial(ZmqConnection, "inproc://unused"), send_timeout=0)


@pytest.mark.parametrize(("value", "expected"), [(None, None), (2.5, 2.5), (3, 3.0)])
def test_send_timeout_comes_from_interfaces_broker(value, expected):
    broker = (
        {"endpoint": "inproc://unused"}
        if value is None
        else {"endpoint": "inproc://unused", "send_timeout": value}
    )
    publisher = BrokerPublisher.from_config(Config({"name": "orders", "interfaces": {"broker": broker}}))
    assert publisher.send_timeout == expected


@pytest.mark.parametrize("value", [0, -1, "soon"])
def test_a_wrong_send_timeout_is_refused_naming_the_key(value):
    config = Config({"name": "orders", "interfaces": {"broker": {"send_timeout": value}}})
    with pytest.raises(ConfigError, match=r"interfaces\.broker\.send_timeout"):
        BrokerPublisher.from_config(config)
