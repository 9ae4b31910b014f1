"""Moving frames: the broker's routing table, ZeroMQ endpoints, NATS JetStream and the in-memory twin."""

from .broker_binding import BrokerBindError
from .broker_server import BrokerServer
from .broker_stats import BrokerStats
from .connection import (
    BrokerFullError,
    BrokerUnavailableError,
    Connection,
    ConnectionClosedError,
    DeliveryHandler,
    Incoming,
    RoomWaiters,
    Strategy,
)
from .memory import MemoryBroker, MemoryConnection
from .nats import NatsConnection
from .partitioned import PartitionedConnection, partition_of
from .routing import Delivery, RoutingStats, RoutingTable
from .security import (
    CurveClient,
    CurveKeys,
    CurveServer,
    CurveSettings,
    KeyFileError,
    create_keys,
    load_allowed_clients,
    load_public,
    load_secret,
)
from .subjects import NatsSettings
from .zmq import ZmqConnection

__all__ = [
    "BrokerBindError",
    "BrokerFullError",
    "BrokerServer",
    "BrokerStats",
    "BrokerUnavailableError",
    "Connection",
    "ConnectionClosedError",
    "CurveClient",
    "CurveKeys",
    "CurveServer",
    "CurveSettings",
    "Delivery",
    "DeliveryHandler",
    "Incoming",
    "KeyFileError",
    "MemoryBroker",
    "MemoryConnection",
    "NatsConnection",
    "NatsSettings",
    "PartitionedConnection",
    "RoomWaiters",
    "RoutingStats",
    "RoutingTable",
    "Strategy",
    "ZmqConnection",
    "create_keys",
    "load_allowed_clients",
    "load_public",
    "load_secret",
    "partition_of",
]
