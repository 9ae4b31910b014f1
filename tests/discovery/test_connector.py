"""DiscoveryConnector: registered on start and removed on stop, retried while discovery is down, never blocking."""

import asyncio
import time

import pytest

from minos.common import Config
from minos.networks import MinosDiscoveryConnectorException, MinosInvalidDiscoveryClient, enroute
from minos.networks.discovery import (
    Backoff,
    DiscoveryConnector,
    DiscoveryState,
    InMemoryDiscoveryClient,
    MinosDiscoveryClient,
    endpoints_from_config,
)
from minos.networks.system import HealthRegistry

ENDPOINTS = [{"url": "/users", "method": "GET"}]
QUICK = Backoff(first=0.01, maximum=0.05)
WAIT = 10


class UserService:
    @enroute.rest.query("/users/{user_id}", method="get", auth=True)
    async def get_user(self, request): ...

    @enroute.rest.command("/users", method="POST")
    @enroute.rest.command("/accounts", method="POST")
    async def create_user(self, request): ...

    @enroute.broker.command("user.create")
    async def create_by_message(self, request): ...


class OtherService:
    @enroute.rest.query("/users", method="GET")
    async def list_users(self, request): ...


class NotAClient:
    pass


class FakeMonotonic:
    """Monotonic seconds that pass only when the connector waits between attempts."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def connector_of(client, **kwargs) -> DiscoveryConnector:
    kwargs.setdefault("health", HealthRegistry())
    return DiscoveryConnector(client, "users", ENDPOINTS, "10.0.0.7", 8080, **kwargs)


async def test_the_service_is_registered_on_start_and_unregistered_on_stop(discovery):
    health = HealthRegistry()
    connector = connector_of(MinosDiscoveryClient("127.0.0.1", discovery.port), health=health)
    async with connector:
        assert connector.state is DiscoveryState.REGISTERED
        assert discovery.services == {
            "users": {"address": "10.0.0.7", "port": 8080, "endpoints": [["GET", "/users"]]}
        }
        assert health.report()["discovery"] == (
            True,
            f"registered as 'users' at http://127.0.0.1:{discovery.port}",
        )
    assert connector.state is DiscoveryState.UNREGISTERED
    assert discovery.services == {}
    assert discovery.requests == [("POST", "users"), ("DELETE", "users")]
    assert health.report() == {}


async def test_discovery_down_at_start_up_never_blocks_start_up_and_registration_follows_when_it_is_up(
    discovery_down,
):
    health = HealthRegistry()
    client = MinosDiscoveryClient("127.0.0.1", discovery_down.port, attempts=1)
    connector = connector_of(client, startup_timeout=0.2, backoff=QUICK, health=health)
    began = time.monotonic()
    await connector.subscribe()
    try:
        assert time.monotonic() - began < 2
        assert connector.state is DiscoveryState.RETRYING
        healthy, detail = health.report()["discovery"]
        assert not healthy
        assert detail.startswith("retrying with http://127.0.0.1:")
        assert "could not reach the discovery service" in detail

        await discovery_down.start()  # discovery comes up, on the port the service knows
        await connector.wait_registered(WAIT)
        assert connector.state is DiscoveryState.REGISTERED
        assert connector.attempts > 1
        assert "users" in discovery_down.services
        assert health.report()["discovery"].healthy
    finally:
        await connector.unsubscribe()
    assert discovery_down.requests[-1] == ("DELETE", "users")


async def test_stopping_while_discovery_is_still_down_stops_retrying_and_sends_nothing(discovery_down):
    client = InMemoryDiscoveryClient()
    client.available = False
    connector = connector_of(client, startup_timeout=0.05, backoff=QUICK)
    await connector.subscribe()
    assert connector.state is DiscoveryState.RETRYING
    await connector.unsubscribe()
    assert connector.state is DiscoveryState.UNREGISTERED
    assert ("unsubscribe", "users") not in client.calls


async def test_the_connector_gives_up_after_retrying_for_the_time_it_was_given():
    client = InMemoryDiscoveryClient()
    client.available = False
    clock = FakeMonotonic()
    connector = connector_of(
        client,
        retry_for=10,
        backoff=Backoff(first=1, factor=2, maximum=4, jitter=0),
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(MinosDiscoveryConnectorException, match="could not register with discovery") as caught:
        await connector.subscribe()
    assert connector.state is DiscoveryState.FAILED
    assert clock.waits == [1, 2, 4]  # a fourth wait of 4 s would end past the 10 s allowed
    assert connector.attempts == 4
    assert caught.value.__cause__ is connector.last_error
    assert not connector.health().healthy
    await connector.unsubscribe()


async def test_a_refused_registration_fails_at_once(discovery):
    discovery.failures = [409]
    connector = connector_of(MinosDiscoveryClient("127.0.0.1", discovery.port))
    with pytest.raises(MinosDiscoveryConnectorException, match="status 409"):
        await connector.subscribe()
    assert connector.state is DiscoveryState.FAILED
    assert connector.attempts == 1
    await connector.unsubscribe()
    assert discovery.requests == [("POST", "users")]


async def test_unsubscribing_is_bounded_and_a_failure_to_unregister_is_raised(discovery):
    connector = connector_of(MinosDiscoveryClient("127.0.0.1", discovery.port, attempts=1), stop_timeout=WAIT)
    await connector.subscribe()
    discovery.failures = [500]
    with pytest.raises(MinosDiscoveryConnectorException, match="could not unregister"):
        await connector.unsubscribe()
    assert "users" in discovery.services


async def test_subscribe_is_idempotent_and_port_defaults_to_8080():
    client = InMemoryDiscoveryClient()
    connector = DiscoveryConnector(client, "users", ENDPOINTS, "10.0.0.7", health=HealthRegistry())
    await connector.subscribe()
    await connector.subscribe()
    assert client.calls == [("subscribe", "users")]
    assert client.services["users"]["port"] == 8080
    await connector.unsubscribe()
    await connector.unsubscribe()
    assert client.calls == [("subscribe", "users"), ("unsubscribe", "users")]


def test_the_endpoints_are_the_rest_routes_of_the_services_sorted_with_their_keyword_arguments():
    config = Config({"name": "users", "services": [UserService, OtherService]})
    assert endpoints_from_config(config) == [
        {"url": "/accounts", "method": "POST"},
        {"url": "/users", "method": "GET"},
        {"url": "/users", "method": "POST"},
        {"url": "/users/{user_id}", "method": "GET", "auth": True},
    ]


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("memory", InMemoryDiscoveryClient),
        ("minos", MinosDiscoveryClient),
        (MinosDiscoveryClient, MinosDiscoveryClient),
    ],
)
def test_the_connector_is_built_from_the_config(client, expected):
    config = Config(
        {
            "name": "users",
            "interfaces": {"http": {"port": 9000}},
            "services": [UserService],
            "discovery": {
                "client": client,
                "host": "disc",
                "port": 1234,
                "address": "10.1.1.1",
                "startup_timeout": 1,
            },
        }
    )
    connector = DiscoveryConnector.from_config(config, health=HealthRegistry())
    assert type(connector.client) is expected
    assert (connector.client.host, connector.client.port) == ("disc", 1234)
    assert (connector.name, connector.host, connector.port) == ("users", "10.1.1.1", 9000)
    assert connector.startup_timeout == 1.0
    assert connector.endpoints == endpoints_from_config(config)


def test_a_client_given_by_import_path_is_imported():
    config = Config(
        {"name": "users", "discovery": {"client": "minos.networks.discovery.InMemoryDiscoveryClient"}}
    )
    connector = DiscoveryConnector.from_config(config, health=HealthRegistry())
    assert type(connector.client) is InMemoryDiscoveryClient
    assert connector.port == 8080
    assert connector.retry_for == 600.0


def test_retry_for_null_retries_for_as_long_as_the_service_runs():
    config = Config(
        {"name": "users", "discovery": {"client": "memory", "address": "10.0.0.1", "retry_for": None}}
    )
    assert DiscoveryConnector.from_config(config, health=HealthRegistry()).retry_for is None


@pytest.mark.parametrize(
    ("discovery", "message"),
    [
        ({}, "no discovery client is configured"),
        ({"client": "no.such.module.Client"}, "cannot be imported"),
        ({"client": f"{__name__}.NotAClient"}, "is not a DiscoveryClient subclass"),
    ],
)
def test_an_unusable_client_is_an_invalid_discovery_client(discovery, message):
    config = Config({"name": "users", "discovery": discovery})
    with pytest.raises(MinosInvalidDiscoveryClient, match=message):
        DiscoveryConnector.from_config(config)


def test_a_connector_needs_a_discovery_client():
    with pytest.raises(MinosInvalidDiscoveryClient, match="must be a DiscoveryClient"):
        DiscoveryConnector(NotAClient(), "users", ENDPOINTS, "10.0.0.7")


class SlowClient(InMemoryDiscoveryClient):
    """Registration hangs (a slow discovery service), and it may have got through when it is cut short."""

    async def subscribe(self, host, port, name, endpoints):
        self.calls.append(("subscribe", name))
        await asyncio.Event().wait()


async def test_stopping_during_an_attempt_that_may_have_got_through_undoes_it():
    client = SlowClient()
    connector = connector_of(client, startup_timeout=0.01)
    await connector.subscribe()
    assert connector.state is DiscoveryState.REGISTERING
    await connector.unsubscribe()
    assert client.calls == [("subscribe", "users"), ("unsubscribe", "users")]
