"""Item 11 of issue 17: 0.7's life cycle (setup, destroy, already_setup) on every component that has one."""

from collections.abc import Callable
from contextlib import AsyncExitStack
from uuid import uuid4

import pytest

from minos.common import Config
from minos.networks import (
    AioHttpConnector,
    BrokerClient,
    BrokerClientPool,
    BrokerDispatcher,
    BrokerHandler,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPort,
    BrokerPublisher,
    BrokerSubscriber,
    DiscoveryConnector,
    HealthRegistry,
    HttpPort,
    InMemoryBrokerPublisher,
    InMemoryBrokerSubscriber,
    InMemoryDiscoveryClient,
    PeriodicPort,
    PeriodicTaskScheduler,
)


@pytest.fixture
def config(service07) -> Config:
    name = f"orders{uuid4().hex[:8]}"
    return Config(
        {
            "name": name,
            "interfaces": {
                "broker": {"endpoint": f"inproc://{name}", "close_timeout": 2.0},
                "http": {"host": "127.0.0.1", "port": 0},
            },
            "services": [
                service07.OrderCommandService,
                service07.OrderQueryService,
                service07.OrderEventService,
            ],
        }
    )


COMPONENTS: dict[str, Callable[[Config], object]] = {
    "BrokerClient": BrokerClient.from_config,
    "BrokerClientPool": BrokerClientPool.from_config,
    "BrokerPublisher": BrokerPublisher.from_config,
    "InMemoryBrokerPublisher": lambda config: InMemoryBrokerPublisher(),
    "BrokerSubscriber": lambda config: BrokerSubscriber.from_config(config, ["OrderCreated"]),
    "InMemoryBrokerSubscriber": lambda config: InMemoryBrokerSubscriber(["OrderCreated"]),
    "BrokerHandler": lambda config: BrokerHandler.from_config(config, BrokerDispatcher.from_config(config)),
    "BrokerPort": BrokerPort.from_config,
    "HttpPort": HttpPort.from_config,
    "AioHttpConnector": AioHttpConnector.from_config,
    "PeriodicPort": lambda config: PeriodicPort.from_config(config, health=HealthRegistry()),
    "PeriodicTaskScheduler": PeriodicTaskScheduler.from_config,
    "DiscoveryConnector": lambda config: DiscoveryConnector(
        InMemoryDiscoveryClient(), config.name, [], "127.0.0.1", health=HealthRegistry()
    ),
}


@pytest.mark.parametrize("build", COMPONENTS.values(), ids=COMPONENTS.keys())
async def test_item_11_setup_and_destroy_are_start_and_stop_and_already_setup_follows_them(config, build):
    async with AsyncExitStack() as stack:
        component = build(config)
        if not isinstance(component, BrokerPort):  # the others connect to the broker a BrokerPort embeds
            await stack.enter_async_context(BrokerPort.broker_only(config))
        assert (component.already_setup, component.already_destroyed) == (False, True)
        await component.setup()
        await component.setup()  # already set up: nothing more happens
        assert (component.already_setup, component.already_destroyed) == (True, False)
        await component.destroy()
        assert (component.already_setup, component.already_destroyed) == (False, True)
        async with component:
            assert component.already_setup
        assert component.already_destroyed


async def test_item_11_a_0_7_style_set_up_serves_broker_requests(config, service07):
    port = BrokerPort.from_config(config)
    client = BrokerClient.from_config(config)
    await port.setup()
    await client.setup()
    try:
        await client.send(BrokerMessageV1("CreateOrder", BrokerMessageV1Payload({"items": ["pen"]})))
        reply = await client.receive()
        assert (reply.status, reply.content["items"]) == (200, ["pen"])
    finally:
        await client.destroy()
        await port.destroy()
    assert not port.service.running


async def test_item_11_destroy_stops_what_start_started():
    connector = DiscoveryConnector(
        InMemoryDiscoveryClient(), "orders", [], "127.0.0.1", health=HealthRegistry()
    )
    await connector.start()
    assert connector.client.is_subscribed
    await connector.destroy()
    assert not connector.client.is_subscribed
