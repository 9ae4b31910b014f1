"""No broker at the endpoint: every client raises BrokerUnavailableError naming it, within its timeout, quietly."""

import logging
import time
from functools import partial

import pytest

from minos.common import Config
from minos.networks import (
    BrokerClient,
    BrokerPort,
    BrokerPublisher,
    BrokerSubscriber,
    BrokerUnavailableError,
    Request,
    Response,
    enroute,
)
from minos.networks.actors import ActorService, ActorSystem, ChildSpec, EscalationError
from minos.networks.brokers import PeerActor, PeerHandle
from minos.networks.transports import ZmqConnection

CONNECT_TIMEOUT = 0.5


class Orders:
    @enroute.broker.command("order.get")
    async def get(self, request: Request) -> Response:
        return Response(None)


@pytest.fixture
def nowhere(short_dir):
    """An ipc endpoint where no broker listens."""
    return f"ipc://{short_dir}/nobody.sock"


def no_broker_config(endpoint: str) -> Config:
    broker = {"endpoint": endpoint, "connect_timeout": CONNECT_TIMEOUT}
    return Config({"name": "orders", "interfaces": {"broker": broker}, "services": [Orders]})


CLIENTS = {
    "BrokerPublisher": BrokerPublisher.from_config,
    "BrokerClient": BrokerClient.from_config,
    "BrokerPort": BrokerPort.from_config,
    "BrokerSubscriber": partial(BrokerSubscriber.from_config, topics=["order.created"]),
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_async_with_a_client_and_no_broker_raises_broker_unavailable_naming_the_endpoint(
    nowhere, client, caplog
):
    caplog.set_level(logging.DEBUG, logger="pykka")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as raised:
        async with CLIENTS[client](no_broker_config(nowhere)):
            pytest.fail("the client started without a broker")

    assert str(raised.value) == (
        f"no broker answered at {nowhere!r} within {CONNECT_TIMEOUT} s; start one there "
        "(minos-networks broker) or check the endpoint"
    )
    assert time.monotonic() - started >= CONNECT_TIMEOUT  # it waited the connection's own timeout
    loud = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert loud == []  # the caller has the error: nothing else to say


async def test_an_actor_start_timeout_shorter_than_the_connect_timeout_still_gives_the_connection_error(
    nowhere,
):
    # The ChildSpec allows 0.1 s, the connection waits 0.5 s: the supervisor waits for the actor's own
    # bound (derived from the connection's open_timeout), so the real cause comes back.
    handle = PeerHandle("peer")
    connect = partial(ZmqConnection, nowhere, connect_timeout=CONNECT_TIMEOUT)
    spec = ChildSpec("peer", partial(PeerActor.start, connect=connect, handle=handle), start_timeout=0.1)

    with pytest.raises(EscalationError) as raised:
        await ActorSystem([spec]).start_async()
    assert isinstance(raised.value.__cause__, BrokerUnavailableError)
    assert raised.value.at_start

    with pytest.raises(BrokerUnavailableError, match="no broker answered"):
        await ActorService("service", [spec]).start()


def test_a_peer_actor_waits_longer_than_its_connection_may_take_to_open(nowhere):
    handle = PeerHandle("peer")
    for timeout in (0.5, 30.0):
        connect = partial(ZmqConnection, nowhere, connect_timeout=timeout)
        actor = PeerActor(connect=connect, handle=handle)
        assert actor.start_timeout > timeout
        assert actor.start_bound() > actor.start_timeout
