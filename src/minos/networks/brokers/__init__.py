"""The broker side of a service: publishers, subscribers, clients, handlers and the broker port, as actors."""

from .client import BrokerClient, BrokerClientPool
from .config import (
    BROKER_KEYS,
    BrokerSettings,
    RetryPolicy,
    broker_settings,
    connection_factory,
    memory_broker,
)
from .dead_letter_queue import DeadLetter, DeadLetterFormatError, DeadLetterQueue
from .duplicates import DuplicateFilter
from .handler import BrokerHandler
from .peer import ConnectionFactory, PeerActor, PeerHandle, Subscription
from .port import BrokerPort, BrokerServerActor
from .publisher import BrokerPublisher, InMemoryBrokerPublisher
from .service import PeerService
from .sink import DispatchSink
from .subscriber import BrokerSubscriber, InMemoryBrokerSubscriber

__all__ = [
    "BROKER_KEYS",
    "BrokerClient",
    "BrokerClientPool",
    "BrokerHandler",
    "BrokerPort",
    "BrokerPublisher",
    "BrokerServerActor",
    "BrokerSettings",
    "BrokerSubscriber",
    "ConnectionFactory",
    "DeadLetter",
    "DeadLetterFormatError",
    "DeadLetterQueue",
    "DispatchSink",
    "DuplicateFilter",
    "InMemoryBrokerPublisher",
    "InMemoryBrokerSubscriber",
    "PeerActor",
    "PeerHandle",
    "PeerService",
    "RetryPolicy",
    "Subscription",
    "broker_settings",
    "connection_factory",
    "memory_broker",
]
