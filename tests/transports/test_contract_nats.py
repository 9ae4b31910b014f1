"""The transport contract, run against NatsConnection and the NATS JetStream server of the machine."""

import dataclasses

import pytest

from minos.networks.testing import TransportContract
from minos.networks.transports import NatsConnection


class TestNatsTransport(TransportContract):
    @pytest.fixture
    def transport_resources(self, nats_settings):
        self.settings = nats_settings

    async def start_broker(self, *, max_messages):
        # The stream is the broker: the first connection creates it with these settings, the fixture deletes it.
        return dataclasses.replace(self.settings, max_messages=max_messages)

    async def stop_broker(self, broker):
        pass

    def connection(self, broker, *, on_delivery, window, max_in_flight):
        return NatsConnection(broker, on_delivery=on_delivery, window=window, max_in_flight=max_in_flight)

    async def kill(self, connection):
        await connection.abort()
