"""The transport contract, run against the in-memory twin."""

from minos.networks.testing import TransportContract
from minos.networks.transports import MemoryBroker, MemoryConnection


class TestMemoryTransport(TransportContract):
    async def start_broker(self, *, max_messages):
        return MemoryBroker(max_messages=max_messages)

    async def stop_broker(self, broker):
        assert broker.peers() == 0, "a connection outlived its test"

    def connection(self, broker, *, on_delivery, window, max_in_flight):
        return MemoryConnection(broker, on_delivery=on_delivery, window=window, max_in_flight=max_in_flight)

    async def kill(self, connection):
        await connection.abort()
