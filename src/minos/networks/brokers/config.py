"""Reading ``interfaces.broker`` from Config: the broker settings and the connection factory they imply."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from minos.common import Config, ConfigError

from ..transports import MemoryBroker, MemoryConnection, ZmqConnection
from .peer import ConnectionFactory

__all__ = ["BrokerSettings", "broker_settings", "connection_factory", "memory_broker"]

DEFAULT_ENDPOINT = "inproc://minos-broker"
TRANSPORTS = ("zmq", "memory")


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """The ``interfaces.broker`` section, validated, with its defaults.

    Attributes:
        transport: ``zmq`` (the default) or ``memory`` (the in-process twin, for tests).
        endpoint: Where the broker is: ``inproc://...`` (same process), ``ipc://...`` or ``tcp://...``.
        embedded: Whether this process runs the broker itself (default: when the endpoint is inproc).
        bind: More endpoints the embedded broker listens on, so other processes can reach it.
        group: The group this service's dispatchers join (default: the service's ``name``).
        dispatchers: How many dispatcher actors run handlers (each with a connection of its own).
        concurrency: How many handlers each dispatcher runs at once (1 keeps each topic in order).
        window: How many deliveries a dispatcher or subscriber may hold unacknowledged.
        max_in_flight: How many sends a publisher lets await the broker's acceptance at once.
        max_messages: How many messages the embedded broker holds before it refuses publishes.
        heartbeat_interval: Seconds between heartbeats; a peer silent for three is declared lost.
        close_timeout: Seconds in-flight work gets to finish at stop.
        duplicate_ttl: Seconds a handled message's identifier is remembered to filter duplicates.
        duplicate_entries: How many identifiers are remembered at most.
    """

    transport: str = "zmq"
    endpoint: str = DEFAULT_ENDPOINT
    embedded: bool = True
    bind: tuple[str, ...] = ()
    group: str = ""
    dispatchers: int = 1
    concurrency: int = 5
    window: int = 1000
    max_in_flight: int = 10_000
    max_messages: int = 1_000_000
    heartbeat_interval: float = 1.0
    close_timeout: float = 5.0
    duplicate_ttl: float = 600.0
    duplicate_entries: int = 100_000

    def publisher(self) -> dict[str, Any]:
        """Keyword arguments for a BrokerPublisher."""
        return {"max_in_flight": self.max_in_flight, "close_timeout": self.close_timeout}


def broker_settings(config: Config) -> BrokerSettings:
    """Read and check ``interfaces.broker`` (every key optional).

    Raises:
        ConfigError: A key has the wrong type or an impossible value; the message names it.
    """
    key = "interfaces.broker"
    endpoint = config.get_str(f"{key}.endpoint", DEFAULT_ENDPOINT)
    transport = config.get_str(f"{key}.transport", "zmq")
    if transport not in TRANSPORTS:
        raise ConfigError(
            f"Config key '{key}.transport' in {config.source} must be one of {TRANSPORTS!r}, got {transport!r}",
            key=f"{key}.transport",
            source=config.source,
        )
    if transport == "zmq" and not endpoint.startswith(("inproc://", "ipc://", "tcp://")):
        raise ConfigError(
            f"Config key '{key}.endpoint' in {config.source} must start with inproc://, ipc:// or tcp://, "
            f"got {endpoint!r}",
            key=f"{key}.endpoint",
            source=config.source,
        )
    bind = config.get_list(f"{key}.bind", [])
    settings = BrokerSettings(
        transport=transport,
        endpoint=endpoint,
        embedded=config.get_bool(f"{key}.embedded", endpoint.startswith("inproc://")),
        bind=tuple(str(item) for item in bind),
        group=config.get_str(f"{key}.group", config.name),
        dispatchers=config.get_int(f"{key}.dispatchers", 1),
        concurrency=config.get_int(f"{key}.concurrency", 5),
        window=config.get_int(f"{key}.window", 1000),
        max_in_flight=config.get_int(f"{key}.max_in_flight", 10_000),
        max_messages=config.get_int(f"{key}.max_messages", 1_000_000),
        heartbeat_interval=config.get_float(f"{key}.heartbeat_interval", 1.0),
        close_timeout=config.get_float(f"{key}.close_timeout", 5.0),
        duplicate_ttl=config.get_float(f"{key}.duplicates.ttl", 600.0),
        duplicate_entries=config.get_int(f"{key}.duplicates.max_entries", 100_000),
    )
    for name in (
        "dispatchers",
        "concurrency",
        "window",
        "max_in_flight",
        "max_messages",
        "duplicate_entries",
    ):
        value = getattr(settings, name)
        if value < 1:
            raise ConfigError(
                f"Config value {name}={value!r} under '{key}' in {config.source} must be at least 1",
                key=key,
                source=config.source,
            )
    for name in ("heartbeat_interval", "close_timeout", "duplicate_ttl"):
        value = getattr(settings, name)
        if value <= 0:
            raise ConfigError(
                f"Config value {name}={value!r} under '{key}' in {config.source} must be positive",
                key=key,
                source=config.source,
            )
    return settings


_memory_brokers: dict[str, MemoryBroker] = {}
_memory_lock = threading.Lock()


def memory_broker(name: str, *, max_messages: int = 1_000_000) -> MemoryBroker:
    """The process's in-memory broker called ``name``, created on first use."""
    with _memory_lock:
        broker = _memory_brokers.get(name)
        if broker is None:
            broker = _memory_brokers[name] = MemoryBroker(max_messages=max_messages)
        return broker


def connection_factory(config: Config) -> ConnectionFactory:
    """How this service connects to its broker, as ``interfaces.broker`` says."""
    settings = broker_settings(config)
    if settings.transport == "memory":
        broker = memory_broker(settings.endpoint, max_messages=settings.max_messages)
        return partial(MemoryConnection, broker, max_in_flight=settings.max_in_flight)
    # inproc endpoints need the broker's zmq context: both sides use zmq.Context.instance(), the default.
    return partial(
        ZmqConnection,
        settings.endpoint,
        max_in_flight=settings.max_in_flight,
        heartbeat_interval=settings.heartbeat_interval,
    )
