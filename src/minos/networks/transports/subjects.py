"""How minos topics and groups map onto NATS JetStream: settings, subjects, consumer names, stream config.

A topic becomes a subject token string under the stream's prefix, one subject space per strategy::

    <prefix>.u.<encoded topic>   UNICAST messages: one consumer per topic, shared by every group
    <prefix>.m.<encoded topic>   MULTICAST messages: one consumer per (group, topic)

The encoding is reversible: ASCII letters, digits, ``-`` and ``_`` stay as they are, a ``.`` stays a
token separator unless it would make an empty token (first, last, or next to another dot), and every
other byte of the topic's UTF-8 becomes ``~XX`` (two upper-case hex digits), ``~`` itself included.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["NatsSettings", "consumer_name", "decode_topic", "encode_topic", "subject_of"]

_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_DOT: Final = ord(".")
_ESCAPED: Final = re.compile(r"~([0-9A-F]{2})")
_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]+")
MAX_SUBJECT_BYTES: Final = 2048
"""The longest subject a NatsConnection publishes (NATS's protocol line is 4 KiB by default)."""
UNICAST_TOKEN: Final = "u"
MULTICAST_TOKEN: Final = "m"
STORAGES: Final = ("file", "memory")


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """Where the NATS servers are and how the JetStream stream and its consumers are set up.

    Attributes:
        servers: The NATS server URLs, e.g. ``("nats://127.0.0.1:4222",)``; more than one for a cluster.
        stream: The JetStream stream holding every message of these services (created if missing).
        subject_prefix: The first subject token; the stream takes ``<subject_prefix>.>``.
        ack_wait: Seconds a delivery may go without acknowledgement or sign of life before JetStream
            delivers it again. A live connection sends "in progress" for what it holds every third of
            it, so only a dead or cut-off peer's deliveries come back (as with the ZeroMQ heartbeats).
        max_deliveries: After this many deliveries of one message that were never acknowledged (its
            holders crashed or were cut off each time), the next one goes to the dead-letter topic and
            is terminated in JetStream; 0 never gives up.
        max_messages: How many messages the stream holds (unacknowledged by some group) before it
            refuses publishes, which then wait (the stream's ``max_msgs``, with ``discard: new``).
        storage: ``file`` (what a PubAck promises survives a server restart) or ``memory``.
        replicas: The stream's replicas in a JetStream cluster (1 on a single server).
        connect_timeout: Seconds ``open`` waits for a server, and JetStream API calls for an answer.
        reconnect_max_wait: The longest wait between reconnection attempts (they back off from 50 ms).
        pull_expires: Seconds a pull request lives at the server before it is renewed; a clean ``close``
            waits up to this long for its requests to end before it hands back what it holds.
        transient_ttl: Seconds after which the server removes the consumer of a transient group whose
            member vanished without closing (a clean close removes it at once).
    """

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    stream: str = "MINOS"
    subject_prefix: str = "minos"
    ack_wait: float = 30.0
    max_deliveries: int = 5
    max_messages: int = 1_000_000
    storage: str = "file"
    replicas: int = 1
    connect_timeout: float = 5.0
    reconnect_max_wait: float = 2.0
    pull_expires: float = 2.0
    transient_ttl: float = 60.0

    def __post_init__(self) -> None:
        problems = []
        if not self.servers or not all(isinstance(s, str) and "://" in s for s in self.servers):
            problems.append(
                f"servers must be a non-empty list of URLs like nats://host:4222, got {self.servers!r}"
            )
        if not self.stream or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.stream):
            problems.append(f"stream must be 1 to 64 letters, digits, '-' or '_', got {self.stream!r}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", self.subject_prefix):
            problems.append(
                f"subject_prefix must be dot-separated tokens of letters, digits, '-' or '_', got "
                f"{self.subject_prefix!r}"
            )
        for name in ("ack_wait", "connect_timeout", "reconnect_max_wait", "pull_expires", "transient_ttl"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                problems.append(f"{name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.max_deliveries, int) or self.max_deliveries < 0:
            problems.append(f"max_deliveries must be 0 (never give up) or more, got {self.max_deliveries!r}")
        for name in ("max_messages", "replicas"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be at least 1, got {value!r}")
        if self.storage not in STORAGES:
            problems.append(f"storage must be one of {STORAGES!r}, got {self.storage!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def stream_subjects(self) -> list[str]:
        """The subjects the stream takes."""
        return [f"{self.subject_prefix}.>"]


def encode_topic(topic: str) -> str:
    """The subject tokens standing for ``topic`` (reversed by ``decode_topic``)."""
    data = topic.encode()
    last = len(data) - 1
    out: list[str] = []
    for index, byte in enumerate(data):
        if byte in _SAFE:
            out.append(chr(byte))
        elif byte == _DOT and 0 < index < last and data[index - 1] != _DOT and data[index + 1] != _DOT:
            out.append(".")
        else:
            out.append(f"~{byte:02X}")
    return "".join(out)


def decode_topic(encoded: str) -> str:
    """The topic that ``encode_topic`` turned into ``encoded``.

    Raises:
        ValueError: when the escapes in ``encoded`` do not spell UTF-8.
    """
    if "~" not in encoded:
        return encoded
    data = bytearray()
    position = 0
    for match in _ESCAPED.finditer(encoded):
        data += encoded[position : match.start()].encode()
        data.append(int(match.group(1), 16))
        position = match.end()
    data += encoded[position:].encode()
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        raise ValueError(f"{encoded!r} is not an encoded topic: {error}") from error


@functools.lru_cache(maxsize=4096)  # one per publish: a service publishes to few topics, many times each
def subject_of(prefix: str, strategy_token: str, topic: str) -> str:
    """The subject of ``topic``'s messages of one strategy (``UNICAST_TOKEN`` or ``MULTICAST_TOKEN``).

    Raises:
        ValueError: when the subject would be longer than ``MAX_SUBJECT_BYTES``.
    """
    subject = f"{prefix}.{strategy_token}.{encode_topic(topic)}"
    if len(subject) > MAX_SUBJECT_BYTES:
        raise ValueError(
            f"the topic {topic[:80]!r}... makes a NATS subject of {len(subject)} bytes, over the "
            f"{MAX_SUBJECT_BYTES} a NatsConnection publishes; use a shorter topic"
        )
    return subject


def consumer_name(strategy_token: str, group: str, topic: str) -> str:
    """The durable consumer's name for ``group`` and ``topic`` (``group`` is empty for unicast ones).

    Readable where the names allow it, and made unique by a hash of the exact group and topic.
    """
    digest = hashlib.sha256(f"{strategy_token}\0{group}\0{topic}".encode()).hexdigest()[:16]
    readable = _NAME_UNSAFE.sub("_", f"{group}-{topic}" if group else topic)[:40]
    return f"minos-{strategy_token}-{readable}-{digest}"


def consumer_description(strategy_token: str, group: str, topic: str) -> str:
    """What a consumer is for, in words, for people reading ``nats consumer ls``."""
    if strategy_token == UNICAST_TOKEN:
        return f"minos: unicast messages to {topic!r}, shared by every group subscribed to it"
    return f"minos: multicast messages to {topic!r} for group {group!r}"
