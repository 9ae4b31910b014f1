"""Discovery clients: the Minos discovery API over real HTTP, bounded retries, and the in-memory twin."""

import pytest

from minos.common import Config
from minos.networks import MinosDiscoveryConnectorException
from minos.networks.discovery import (
    Backoff,
    DiscoveryClient,
    DiscoveryUnavailableError,
    InMemoryDiscoveryClient,
    MinosDiscoveryClient,
)

ENDPOINTS = [{"url": "/users", "method": "GET"}, {"url": "/users/{id}", "method": "DELETE", "auth": True}]
NO_WAIT = Backoff(first=0.0, maximum=0.0)


class Waits:
    """Records the waits between attempts, instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_of(server, **kwargs) -> MinosDiscoveryClient:
    return MinosDiscoveryClient("127.0.0.1", server.port, **kwargs)


async def test_subscribe_posts_the_address_port_and_endpoints_of_the_service(discovery):
    client = client_of(discovery)
    await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    assert discovery.services == {
        "users": {
            "address": "10.0.0.7",
            "port": 8080,
            "endpoints": [["GET", "/users"], ["DELETE", "/users/{id}"]],
        }
    }
    assert discovery.requests == [("POST", "users")]


async def test_unsubscribe_deletes_the_service_and_a_service_already_gone_is_fine(discovery):
    client = client_of(discovery)
    await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    await client.unsubscribe("users")
    await client.unsubscribe("users")  # 404: already gone
    assert discovery.services == {}
    assert discovery.requests == [("POST", "users"), ("DELETE", "users"), ("DELETE", "users")]


async def test_a_server_error_is_retried_with_backoff_until_it_passes(discovery):
    discovery.failures = [503, 500]
    waits = Waits()
    client = client_of(
        discovery, attempts=3, backoff=Backoff(first=0.1, factor=2, maximum=1, jitter=0), sleep=waits
    )
    await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    assert "users" in discovery.services
    assert waits.delays == [0.1, 0.2]
    assert [method for method, _ in discovery.requests] == ["POST"] * 3


async def test_retries_are_bounded_and_end_in_an_unavailable_error(discovery):
    discovery.failures = [503] * 5
    client = client_of(discovery, attempts=2, backoff=NO_WAIT)
    with pytest.raises(DiscoveryUnavailableError, match="status 503") as caught:
        await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    assert isinstance(caught.value, MinosDiscoveryConnectorException)
    assert isinstance(caught.value, ConnectionError)
    assert len(discovery.requests) == 2


async def test_a_refusal_is_not_retried(discovery):
    discovery.failures = [400, 400]
    client = client_of(discovery, attempts=5, backoff=NO_WAIT)
    with pytest.raises(
        MinosDiscoveryConnectorException, match="refused by the discovery service with status 400"
    ):
        await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    assert len(discovery.requests) == 1


async def test_a_discovery_service_that_is_down_is_reported_unavailable(discovery_down):
    waits = Waits()
    client = client_of(discovery_down, attempts=3, backoff=Backoff(first=0.5, jitter=0), sleep=waits)
    with pytest.raises(DiscoveryUnavailableError, match="could not reach the discovery service") as caught:
        await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    assert caught.value.__cause__ is not None
    assert waits.delays == [0.5, 1.0]


def test_the_route_is_the_base_url_of_the_discovery_service():
    assert MinosDiscoveryClient().route == "http://localhost:5567"
    assert InMemoryDiscoveryClient("discovery", 80).route == "http://discovery:80"
    assert MinosDiscoveryClient("::1", 5567).route == "http://[::1]:5567"


def test_a_client_reads_where_discovery_is_from_the_config():
    config = Config(
        {"name": "users", "discovery": {"host": "disc", "port": 1234, "attempts": 7, "request_timeout": 2}}
    )
    client = MinosDiscoveryClient.from_config(config)
    assert (client.host, client.port, client.attempts, client.request_timeout) == ("disc", 1234, 7, 2.0)
    assert repr(InMemoryDiscoveryClient.from_config(Config({"name": "users"}))) == (
        "InMemoryDiscoveryClient('localhost', 5567)"
    )


def test_client_settings_are_checked():
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        MinosDiscoveryClient(attempts=0)
    with pytest.raises(ValueError, match="a backoff needs"):
        Backoff(factor=0.5)


def test_backoff_grows_exponentially_up_to_its_maximum_with_jitter_below():
    backoff = Backoff(first=1, factor=3, maximum=20, jitter=0.5)
    for attempt, base in [(1, 1), (2, 3), (3, 9), (4, 20), (10, 20)]:
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(base * 0.5 <= delay <= base for delay in delays)
        assert len(delays) > 1


async def test_the_in_memory_client_records_calls_and_can_be_made_unavailable():
    client = InMemoryDiscoveryClient()
    assert isinstance(client, DiscoveryClient)
    await client.subscribe("10.0.0.7", 8080, "users", ENDPOINTS)
    assert client.is_subscribed
    assert client.services["users"] == {"host": "10.0.0.7", "port": 8080, "endpoints": ENDPOINTS}
    client.available = False
    with pytest.raises(DiscoveryUnavailableError):
        await client.unsubscribe("users")
    client.available = True
    await client.unsubscribe("users")
    assert not client.is_subscribed
    assert client.calls == [("subscribe", "users"), ("unsubscribe", "users"), ("unsubscribe", "users")]
