"""The transport contract, run against ZmqConnection and BrokerServer over inproc, ipc and tcp."""

import uuid

import pytest

from minos.networks.testing import TransportContract
from minos.networks.transports import ZmqConnection

HEARTBEAT = 0.1  # seconds: a killed peer is found out within a few, without false alarms on a busy machine


class ZmqContract(TransportContract):
    @pytest.fixture
    def transport_resources(self, zmq_context, broker_threads, short_dir):
        self.context, self.start_thread, self.short_dir = zmq_context, broker_threads, short_dir

    def endpoint(self) -> str:
        raise NotImplementedError

    async def start_broker(self, *, max_messages):
        return self.start_thread(self.endpoint(), max_messages=max_messages, heartbeat_interval=HEARTBEAT)

    async def stop_broker(self, broker):
        pass  # the broker_threads fixture stops it, after the contract closed every connection

    def connection(self, broker, *, on_delivery, window, max_in_flight):
        return ZmqConnection(
            broker.endpoint,
            context=self.context,
            on_delivery=on_delivery,
            window=window,
            max_in_flight=max_in_flight,
            heartbeat_interval=HEARTBEAT,
        )

    async def kill(self, connection):
        await connection.abort()


class TestZmqOverInproc(ZmqContract):
    def endpoint(self):
        return f"inproc://minos-test-{uuid.uuid4().hex}"


class TestZmqOverIpc(ZmqContract):
    def endpoint(self):
        return f"ipc://{self.short_dir / f'{uuid.uuid4().hex[:8]}.sock'}"


class TestZmqOverTcp(ZmqContract):
    def endpoint(self):
        return "tcp://127.0.0.1:0"
