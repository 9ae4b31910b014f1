"""Reading ``interfaces.broker`` from Config: the broker settings and the connection factory they imply."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from random import Random
from typing import Any

from minos.common import Config, ConfigError, KnownKeys

from ..durable import DURABLE_KEYS, DurableSettings, durable_settings
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from ..transports import (
    Connection,
    DeliveryHandler,
    MemoryBroker,
    MemoryConnection,
    NatsConnection,
    NatsSettings,
    PartitionedConnection,
    ZmqConnection,
)
from ..transports.security import CurveClient, CurveSettings
from .peer import ConnectionFactory

__all__ = [
    "BROKER_KEYS",
    "BrokerSettings",
    "RetryPolicy",
    "broker_settings",
    "connection_factory",
    "memory_broker",
]

DEFAULT_ENDPOINT = "inproc://minos-broker"
TRANSPORTS = ("zmq", "memory", "nats")
DEAD_LETTER_SUFFIX = ".dead-letters"
_MAX_DOUBLINGS = 64  # 2**64 times any sane initial delay is past any max_delay; avoids float overflow


_ADDRESS = (
    "minos.networks reaches its broker at one URL: write interfaces.broker.endpoint: tcp://HOST:PORT "
    "(minos 0.7's v2 layout had the address in interfaces.broker.common, which is read as such)"
)

BROKER_KEYS: KnownKeys = {
    **dict.fromkeys(
        (
            "transport",
            "endpoint",
            "embedded",
            "bind",
            "partitions",
            "group",
            "dispatchers",
            "concurrency",
            "window",
            "max_in_flight",
            "max_messages",
            "heartbeat_interval",
            "max_frame_size",
            "close_timeout",
            "send_timeout",
            "connect_timeout",
            "dead_letter_topic",
        )
    ),
    "retries": dict.fromkeys(("max_attempts", "initial_delay", "max_delay")),
    "duplicates": dict.fromkeys(("ttl", "max_entries")),
    "curve": dict.fromkeys(
        ("server_secret_key", "allowed_clients", "client_secret_key", "server_public_key")
    ),
    "nats": dict.fromkeys(
        (
            "servers",
            "stream",
            "subject_prefix",
            "ack_wait",
            "max_deliveries",
            "storage",
            "replicas",
            "connect_timeout",
            "reconnect_max_wait",
            "pull_expires",
            "transient_ttl",
        )
    ),
    "durable": DURABLE_KEYS,
    # minos 0.7 leftovers: a bare address is not ours (the translation maps interfaces.broker.common's)
    "host": _ADDRESS,
    "port": _ADDRESS,
}
"""The keys :func:`broker_settings` reads (``durable``'s are ``durable_settings``'s); any other key of
``interfaces.broker`` or of its subsections is an error naming the closest known key."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing handler is tried, and how long a message waits between tries.

    Attempt ``n`` (1-based) that fails is followed, if ``n < max_attempts``, by a wait of
    ``min(max_delay, initial_delay * 2 ** (n - 1))`` seconds times a jitter factor drawn uniformly from
    [0.5, 1.0], so that messages failing together do not all come back together.

    Attributes:
        max_attempts: How many times a message is handled at most (1: no retry).
        initial_delay: Seconds before the first retry, before jitter.
        max_delay: The longest wait between two attempts, before jitter.
        random: The jitter's source; pass a seeded ``Random`` for repeatable delays.
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    max_delay: float = 5.0
    random: Random = field(default_factory=Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError(
                f"initial_delay and max_delay must not be negative, got {self.initial_delay!r} and "
                f"{self.max_delay!r}"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one."""
        base = min(self.max_delay, self.initial_delay * 2.0 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS))
        return base * self.random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """The ``interfaces.broker`` section, validated, with its defaults.

    Attributes:
        transport: ``zmq`` (the default), ``nats`` (NATS JetStream, see ``nats``) or ``memory`` (the
            in-process twin, for tests).
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
        connect_timeout: Seconds a ZeroMQ connection waits for the broker's answer at start before it
            fails with ``BrokerUnavailableError`` (NATS has its own, ``nats.connect_timeout``).
        max_frame_size: The largest message body sent or accepted, in bytes (16 MiB by default).
        curve: Where the CURVE keys are (``curve.{server_secret_key,allowed_clients}`` for the embedded
            broker, ``curve.{client_secret_key,server_public_key}`` to reach a CURVE broker over tcp);
            None for plain links. Keys are loaded, and secret key files checked, at start-up.
        close_timeout: Seconds in-flight work gets to finish at stop.
        send_timeout: Seconds a publisher's ``send`` waits for the broker's acceptance before it fails with
            BrokerUnavailableError; None (the default) waits as long as it takes, sending again meanwhile.
        duplicate_ttl: Seconds a handled message's identifier is remembered to filter duplicates.
        duplicate_entries: How many identifiers are remembered at most.
        retries: How a failing handler is retried (``retries.{max_attempts,initial_delay,max_delay}``).
        dead_letter_topic: Where a message goes once its handler failed ``retries.max_attempts`` times
            (default ``<group>.dead-letters``).
        partitions: Several broker processes sharing the topics (``ipc://`` or ``tcp://`` endpoints, the same
            list in the same order in every service): each topic lives on the one its name hashes to (see
            ``transports.partitioned``); empty for one broker at ``endpoint``.
        durable: The outbox and inbox store (``durable.{store,path,dsn,schema,origin,resend_after,...}``,
            see ``DurableSettings``); None when the service is not durable.
        nats: The ``nats`` subsection when ``transport`` is ``nats``: ``servers`` (a list of URLs, or one
            string of comma-separated URLs; default ``nats://127.0.0.1:4222``), ``stream`` (``MINOS``),
            ``subject_prefix`` (``minos``), ``ack_wait`` (30 s), ``max_deliveries`` (5), ``storage``
            (``file`` or ``memory``), ``replicas`` (1), ``connect_timeout`` (5 s), ``reconnect_max_wait``
            (2 s), ``pull_expires`` (2 s), ``transient_ttl`` (60 s); the stream holds at most
            ``max_messages``. None for the other transports.
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
    connect_timeout: float = 5.0
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    curve: CurveSettings | None = None
    close_timeout: float = 5.0
    send_timeout: float | None = None
    duplicate_ttl: float = 600.0
    duplicate_entries: int = 100_000
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter_topic: str = ""
    durable: DurableSettings | None = None
    partitions: tuple[str, ...] = ()
    nats: NatsSettings | None = None

    def publisher(self) -> dict[str, Any]:
        """Keyword arguments for a BrokerPublisher."""
        return {
            "max_in_flight": self.max_in_flight,
            "close_timeout": self.close_timeout,
            "send_timeout": self.send_timeout,
        }

    def connection_factory(self) -> ConnectionFactory:
        """How a service with these settings connects to its broker (see :func:`connection_factory`).

        Raises:
            KeyFileError: A CURVE key file is missing or refused, e.g. a secret key readable by others.
        """
        if self.transport == "memory":
            broker = memory_broker(self.endpoint, max_messages=self.max_messages)
            return partial(MemoryConnection, broker, max_in_flight=self.max_in_flight)
        if self.nats is not None:
            return partial(
                NatsConnection,
                self.nats,
                max_in_flight=self.max_in_flight,
                dead_letter_topic=self.dead_letter_topic,
                max_frame_size=self.max_frame_size,
            )
        if self.partitions:
            return partial(
                PartitionedConnection,
                [partial(_zmq_part, self, endpoint) for endpoint in self.partitions],
            )
        # inproc endpoints need the broker's zmq context: both sides use zmq.Context.instance(), the default.
        return partial(
            ZmqConnection,
            self.endpoint,
            max_in_flight=self.max_in_flight,
            heartbeat_interval=self.heartbeat_interval,
            connect_timeout=self.connect_timeout,
            curve=_client_curve(self),
            max_frame_size=self.max_frame_size,
        )


def broker_settings(config: Config) -> BrokerSettings:
    """Read and check ``interfaces.broker`` (every key optional; one that is not in ``BROKER_KEYS`` is an error).

    Raises:
        ConfigError: A key is unknown, has the wrong type or an impossible value; the message names it.
    """
    key = "interfaces.broker"
    config.check_keys(key, BROKER_KEYS)
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
    if transport == "nats" and config.get(f"{key}.embedded", False) is not False:
        raise ConfigError(
            f"Config key '{key}.embedded' in {config.source} must be false (or absent) with transport 'nats': "
            "the NATS server is the broker",
            key=f"{key}.embedded",
            source=config.source,
        )
    bind = config.get_list(f"{key}.bind", [])
    partitions = tuple(str(item) for item in config.get_list(f"{key}.partitions", []))
    if partitions:
        bad = [item for item in partitions if not item.startswith(("ipc://", "tcp://"))]
        if transport != "zmq" or bad or len(set(partitions)) != len(partitions):
            raise ConfigError(
                f"Config key '{key}.partitions' in {config.source} must list distinct ipc:// or tcp:// endpoints "
                f"of broker processes (transport zmq); got {list(partitions)!r}",
                key=f"{key}.partitions",
                source=config.source,
            )
        if config.get_bool(f"{key}.embedded", False):
            raise ConfigError(
                f"Config key '{key}.embedded' in {config.source} must be false with partitions: run each "
                "partition as a broker process (minos-networks broker --bind ENDPOINT)",
                key=f"{key}.embedded",
                source=config.source,
            )
        endpoint = partitions[0]
    group = config.get_str(f"{key}.group", config.name)
    try:
        retries = RetryPolicy(
            max_attempts=config.get_int(f"{key}.retries.max_attempts", 3),
            initial_delay=config.get_float(f"{key}.retries.initial_delay", 0.1),
            max_delay=config.get_float(f"{key}.retries.max_delay", 5.0),
        )
    except ValueError as error:
        raise ConfigError(
            f"Config section '{key}.retries' in {config.source} is invalid: {error}",
            key=f"{key}.retries",
            source=config.source,
        ) from error
    dead_letter_topic = config.get_str(f"{key}.dead_letter_topic", f"{group}{DEAD_LETTER_SUFFIX}")
    if not dead_letter_topic:
        raise ConfigError(
            f"Config key '{key}.dead_letter_topic' in {config.source} must not be empty",
            key=f"{key}.dead_letter_topic",
            source=config.source,
        )
    settings = BrokerSettings(
        transport=transport,
        endpoint=endpoint,
        embedded=transport != "nats" and config.get_bool(f"{key}.embedded", endpoint.startswith("inproc://")),
        bind=tuple(str(item) for item in bind),
        group=group,
        dispatchers=config.get_int(f"{key}.dispatchers", 1),
        concurrency=config.get_int(f"{key}.concurrency", 5),
        window=config.get_int(f"{key}.window", 1000),
        max_in_flight=config.get_int(f"{key}.max_in_flight", 10_000),
        max_messages=config.get_int(f"{key}.max_messages", 1_000_000),
        heartbeat_interval=config.get_float(f"{key}.heartbeat_interval", 1.0),
        connect_timeout=config.get_float(f"{key}.connect_timeout", 5.0),
        max_frame_size=config.get_int(f"{key}.max_frame_size", DEFAULT_MAX_FRAME_SIZE),
        curve=_curve_settings(config, f"{key}.curve"),
        close_timeout=config.get_float(f"{key}.close_timeout", 5.0),
        send_timeout=_send_timeout(config, f"{key}.send_timeout"),
        duplicate_ttl=config.get_float(f"{key}.duplicates.ttl", 600.0),
        duplicate_entries=config.get_int(f"{key}.duplicates.max_entries", 100_000),
        retries=retries,
        dead_letter_topic=dead_letter_topic,
        durable=durable_settings(config, f"{key}.durable"),
        partitions=partitions,
        nats=_nats_settings(config, f"{key}.nats", config.get_int(f"{key}.max_messages", 1_000_000))
        if transport == "nats"
        else None,
    )
    for name in (
        "dispatchers",
        "concurrency",
        "window",
        "max_in_flight",
        "max_messages",
        "max_frame_size",
        "duplicate_entries",
    ):
        value = getattr(settings, name)
        if value < 1:
            raise ConfigError(
                f"Config value {name}={value!r} under '{key}' in {config.source} must be at least 1",
                key=key,
                source=config.source,
            )
    for name in ("heartbeat_interval", "connect_timeout", "close_timeout", "duplicate_ttl"):
        value = getattr(settings, name)
        if value <= 0:
            raise ConfigError(
                f"Config value {name}={value!r} under '{key}' in {config.source} must be positive",
                key=key,
                source=config.source,
            )
    return settings


def _send_timeout(config: Config, key: str) -> float | None:
    """``send_timeout``: a positive number of seconds, or absent / null for no bound."""
    if config.get(key, None) is None:
        return None
    value = config.get_float(key)
    if not value > 0:
        raise ConfigError(
            f"Config key '{key}' in {config.source} must be a positive number of seconds (or absent to wait "
            f"as long as it takes), got {value!r}",
            key=key,
            source=config.source,
        )
    return value


def _nats_settings(config: Config, key: str, max_messages: int) -> NatsSettings:
    """The ``nats`` subsection, checked.

    Raises:
        ConfigError: A key has the wrong type or an impossible value; the message names it.
    """
    defaults = NatsSettings()
    servers: object = config.get(f"{key}.servers", list(defaults.servers))
    if isinstance(servers, str):
        servers = [server.strip() for server in servers.split(",") if server.strip()]
    if not isinstance(servers, list) or not all(isinstance(server, str) for server in servers):
        raise ConfigError(
            f"Config key '{key}.servers' in {config.source} must be a list of URLs like nats://host:4222 "
            f"(or one string of comma-separated URLs), got {servers!r}",
            key=f"{key}.servers",
            source=config.source,
        )
    try:
        return NatsSettings(
            servers=tuple(servers),
            stream=config.get_str(f"{key}.stream", defaults.stream),
            subject_prefix=config.get_str(f"{key}.subject_prefix", defaults.subject_prefix),
            ack_wait=config.get_float(f"{key}.ack_wait", defaults.ack_wait),
            max_deliveries=config.get_int(f"{key}.max_deliveries", defaults.max_deliveries),
            max_messages=max_messages,
            storage=config.get_str(f"{key}.storage", defaults.storage),
            replicas=config.get_int(f"{key}.replicas", defaults.replicas),
            connect_timeout=config.get_float(f"{key}.connect_timeout", defaults.connect_timeout),
            reconnect_max_wait=config.get_float(f"{key}.reconnect_max_wait", defaults.reconnect_max_wait),
            pull_expires=config.get_float(f"{key}.pull_expires", defaults.pull_expires),
            transient_ttl=config.get_float(f"{key}.transient_ttl", defaults.transient_ttl),
        )
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(
            f"Config section '{key}' in {config.source} is invalid: {error}", key=key, source=config.source
        ) from error


def _curve_settings(config: Config, key: str) -> CurveSettings | None:
    """The ``curve`` subsection (paths of key files), or None when it sets nothing."""
    names = ("server_secret_key", "allowed_clients", "client_secret_key", "server_public_key")
    values = {name: config.get_str(f"{key}.{name}", "") for name in names}
    if not any(values.values()):
        return None
    return CurveSettings(
        server_secret_key=Path(values["server_secret_key"]) if values["server_secret_key"] else None,
        allowed_clients=Path(values["allowed_clients"]) if values["allowed_clients"] else None,
        client_secret_key=Path(values["client_secret_key"]) if values["client_secret_key"] else None,
        server_public_key=values["server_public_key"] or None,
    )


def _client_curve(settings: BrokerSettings) -> CurveClient | None:
    """The CURVE keys this service's connections use: loaded (and checked) now, None for plain links.

    Raises:
        KeyFileError: when a key file is missing or refused, e.g. a secret key readable by others.
    """
    if settings.curve is None or settings.endpoint.startswith("inproc://"):
        return None  # inproc links stay plain
    return settings.curve.client()


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
    """How this service connects to its broker, as ``interfaces.broker`` says.

    The composition root, which has the settings already, calls ``BrokerSettings.connection_factory``.
    """
    return broker_settings(config).connection_factory()


def _zmq_part(
    settings: BrokerSettings, endpoint: str, on_delivery: DeliveryHandler, window: int
) -> Connection:
    """The connection to one partition's broker process."""
    return ZmqConnection(
        endpoint,
        on_delivery=on_delivery,
        window=window,
        max_in_flight=settings.max_in_flight,
        heartbeat_interval=settings.heartbeat_interval,
        connect_timeout=settings.connect_timeout,
        curve=_client_curve(settings),
        max_frame_size=settings.max_frame_size,
    )
