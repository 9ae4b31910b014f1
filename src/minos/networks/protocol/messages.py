"""The broker message: BrokerMessageV1, its payload, and the status, strategy and handler-kind enums."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto
from functools import total_ordering
from typing import Any, ClassVar
from uuid import UUID, uuid4

__all__ = [
    "BrokerMessage",
    "BrokerMessageV1",
    "BrokerMessageV1Payload",
    "BrokerMessageV1Status",
    "BrokerMessageV1Strategy",
    "EnrouteDecoratorKind",
]


class BrokerMessageV1Status(IntEnum):
    """The well-known status codes of a reply.

    Any other code (a handler's 404, say) is kept exactly as the plain ``int`` it was; it is never
    collapsed to ``UNKNOWN`` as minos 0.7 did.
    """

    SUCCESS = 200
    ERROR = 400
    SYSTEM_ERROR = 500
    UNKNOWN = 600


class BrokerMessageV1Strategy(Enum):
    """How the broker picks receivers: one subscriber instance, or one per subscribing group."""

    UNICAST = "unicast"
    MULTICAST = "multicast"


class EnrouteDecoratorKind(Enum):
    """The kind of a handler, which names its pre- and post-handle hooks."""

    Command = auto()
    Query = auto()
    Event = auto()

    @property
    def pre_fn_name(self) -> str:
        """The name of the service method run before a handler of this kind, e.g. ``_pre_command_handle``."""
        return f"_pre_{self.name.lower()}_handle"

    @property
    def post_fn_name(self) -> str:
        """The name of the service method run after a handler of this kind, e.g. ``_post_command_handle``."""
        return f"_post_{self.name.lower()}_handle"


_WELL_KNOWN: dict[int, BrokerMessageV1Status] = {member.value: member for member in BrokerMessageV1Status}


def normalize_status(status: int) -> int:
    """Return the enum member for a well-known code and the code itself otherwise.

    Raises:
        TypeError: when ``status`` is not an int (a bool is not a status either).
    """
    if type(status) is BrokerMessageV1Status:  # the common case, first: no conversion at all
        return status
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"a status must be an int such as 200 or 404, got {status!r}")
    return _WELL_KNOWN.get(status, int(status))


def _all_str(headers: dict[str, str]) -> bool:
    # A plain loop: a generator and all() cost more than the check itself on the usual one or two headers.
    for key, value in headers.items():  # noqa: SIM110
        if not isinstance(key, str) or not isinstance(value, str):
            return False
    return True


@total_ordering
@dataclass(frozen=True, slots=True)
class BrokerMessageV1Payload:
    """What a message carries: content, a status code and string headers.

    Payloads order by their content, as minos 0.7 sorted them (``<`` is False when the contents do not
    compare).

    Args:
        content: Any value the frame codec supports (see ``protocol.frames``).
        headers: String keys and string values; the ``user`` header carries the caller's UUID.
        status: A status code; the four well-known ones come back as ``BrokerMessageV1Status`` members,
            any other int is kept as it is.
    """

    content: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = BrokerMessageV1Status.SUCCESS

    def __init__(self, content: Any = None, headers: dict[str, str] | None = None, status: int = 200) -> None:
        if headers is None:
            headers = {}
        elif not isinstance(headers, dict) or not _all_str(headers):
            raise TypeError(f"headers must be a dict of str to str, got {headers!r}")
        object.__setattr__(self, "content", content)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "status", normalize_status(status))

    @property
    def ok(self) -> bool:
        """Whether the status is a success (2xx)."""
        return 200 <= self.status < 300

    @property
    def data(self) -> Any:
        """The content, by minos 0.7's deprecated name; use ``content``."""
        warnings.warn(_DATA_DEPRECATED, DeprecationWarning, stacklevel=2)
        return self.content

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return False
        try:
            return bool(self.content < other.content)
        except Exception:  # contents that do not compare: neither comes first, as in 0.7
            return False


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """The interface every message version offers; ``BrokerMessageV1`` is the one version on the wire."""

    version: ClassVar[int]

    topic: str
    payload: BrokerMessageV1Payload
    identifier: UUID
    strategy: BrokerMessageV1Strategy
    reply_topic: str | None

    @property
    def should_reply(self) -> bool:
        """Whether the sender asked for a reply."""
        return self.reply_topic is not None

    @property
    def content(self) -> Any:
        """The payload's content."""
        return self.payload.content

    @property
    def headers(self) -> dict[str, str]:
        """The payload's headers."""
        return self.payload.headers

    @property
    def status(self) -> int:
        """The payload's status code."""
        return self.payload.status

    @property
    def ok(self) -> bool:
        """Whether the payload's status is a success (2xx)."""
        return self.payload.ok

    @property
    def data(self) -> Any:
        """The payload's content, by minos 0.7's deprecated name; use ``content``."""
        warnings.warn(_DATA_DEPRECATED, DeprecationWarning, stacklevel=2)
        return self.payload.content


@total_ordering
@dataclass(frozen=True, slots=True)
class BrokerMessageV1(BrokerMessage):
    """A message sent to a topic, and version 1 of the wire format.

    Messages are immutable, except through ``set_reply_topic`` (minos 0.7's way, kept for its users):
    use ``with_reply_topic`` (or ``dataclasses.replace``) to derive another. Messages order by their
    payloads' content, as minos 0.7 sorted them.

    Args:
        topic: Where the message goes; a non-empty string.
        payload: Content, headers and status; an empty payload when omitted.
        identifier: Correlates a reply with its request and filters duplicates; a fresh uuid4 by default.
        strategy: ``UNICAST`` (the default) reaches one subscriber instance; ``MULTICAST`` one per group.
        reply_topic: Where the receiver sends its reply; no reply is sent when it is None.

    Raises:
        TypeError: when a field has the wrong type.
        ValueError: when the topic or reply topic is empty.
    """

    version: ClassVar[int] = 1

    def __init__(
        self,
        topic: str,
        payload: BrokerMessageV1Payload | None = None,
        *,
        identifier: UUID | None = None,
        strategy: BrokerMessageV1Strategy | None = None,
        reply_topic: str | None = None,
    ) -> None:
        _check_topic("topic", topic)
        if reply_topic is not None:
            _check_topic("reply_topic", reply_topic)
        if payload is None:
            payload = BrokerMessageV1Payload()
        elif not isinstance(payload, BrokerMessageV1Payload):
            raise TypeError(f"payload must be a BrokerMessageV1Payload, got {payload!r}")
        if identifier is None:
            identifier = uuid4()
        elif not isinstance(identifier, UUID):
            raise TypeError(f"identifier must be a uuid.UUID, got {identifier!r}")
        if strategy is None:
            strategy = BrokerMessageV1Strategy.UNICAST
        elif not isinstance(strategy, BrokerMessageV1Strategy):
            raise TypeError(f"strategy must be a BrokerMessageV1Strategy, got {strategy!r}")
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "identifier", identifier)
        object.__setattr__(self, "strategy", strategy)
        object.__setattr__(self, "reply_topic", reply_topic)

    def __hash__(self) -> int:
        # Content and headers may be unhashable; equal messages always share topic and identifier.
        return hash((self.topic, self.identifier))

    def __lt__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.payload < other.payload

    def set_reply_topic(self, reply_topic: str | None) -> None:
        """Ask for the reply on ``reply_topic`` (None: no reply), changing this message in place.

        Only for a message not handed to anyone yet (a publisher keeps what it was given); prefer
        ``with_reply_topic``, which leaves this message as it is.

        Raises:
            TypeError: ``reply_topic`` is not a string.
            ValueError: ``reply_topic`` is empty.
        """
        if reply_topic is not None:
            _check_topic("reply_topic", reply_topic)
        object.__setattr__(self, "reply_topic", reply_topic)

    def with_reply_topic(self, reply_topic: str | None) -> BrokerMessageV1:
        """Return a copy of this message that asks for its reply on ``reply_topic``."""
        return BrokerMessageV1(
            self.topic,
            self.payload,
            identifier=self.identifier,
            strategy=self.strategy,
            reply_topic=reply_topic,
        )


_DATA_DEPRECATED = "the `data` attribute of a message is minos 0.7's deprecated name; read `content` instead"


def _check_topic(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str such as 'user.created', got {value!r}")
    if not value:
        raise ValueError(f"{name} must not be empty")
