"""Moving frames: the broker's routing table, ZeroMQ endpoints and the in-memory twin."""

from .broker import BrokerBindError, BrokerServer, BrokerStats
from .connection import (
    BrokerFullError,
    BrokerUnavailableError,
    Connection,
    ConnectionClosedError,
    DeliveryHandler,
    Incoming,
    Strategy,
)
from .memory import MemoryBroker, MemoryConnection
from .routing import Delivery, RoutingStats, RoutingTable
from .zmq import ZmqConnection

__all__ = [
    "BrokerBindError",
    "BrokerFullError",
    "BrokerServer",
    "BrokerStats",
    "BrokerUnavailableError",
    "Connection",
    "ConnectionClosedError",
    "Delivery",
    "DeliveryHandler",
    "Incoming",
    "MemoryBroker",
    "MemoryConnection",
    "RoutingStats",
    "RoutingTable",
    "Strategy",
    "ZmqConnection",
]
