"""Item 10 of issue 17: DiscoveryConnector.unsubscribe() as 0.7 had it, with or without a subscribe first."""

from minos.networks import DiscoveryConnector, HealthRegistry, InMemoryDiscoveryClient


def connector_of(client: InMemoryDiscoveryClient) -> DiscoveryConnector:
    return DiscoveryConnector(client, "orders", [], "10.0.0.7", 8080, health=HealthRegistry())


async def test_item_10_unsubscribe_asks_discovery_even_without_a_subscribe_first():
    client = InMemoryDiscoveryClient()
    client.services["orders"] = {"host": "10.0.0.6", "port": 8080, "endpoints": []}  # left by an earlier run
    await connector_of(client).unsubscribe()
    assert client.calls == [("unsubscribe", "orders")]
    assert client.services == {}


async def test_item_10_after_its_own_registration_is_gone_the_connector_sends_nothing_more():
    client = InMemoryDiscoveryClient()
    connector = connector_of(client)
    await connector.subscribe()
    await connector.unsubscribe()
    await connector.unsubscribe()
    await connector.stop()
    assert client.calls == [("subscribe", "orders"), ("unsubscribe", "orders")]
