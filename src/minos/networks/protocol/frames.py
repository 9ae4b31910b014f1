"""The wire codec: a ``BrokerMessageV1`` to a two-frame ZeroMQ multipart message and back.

Wire spec, version 1
--------------------

A message travels as a ZeroMQ multipart message of exactly two frames::

    frame 0  topic  The topic as UTF-8 bytes and nothing else, so that SUB prefix filtering and
                    broker routing never decode the body. Never empty. The body does not repeat it.
    frame 1  body   A msgpack array of exactly 7 items:

             [0] version      int, always 1
             [1] identifier   bin of 16 bytes: the UUID's bytes, big-endian (``uuid.UUID.bytes``)
             [2] strategy     int: 0 unicast, 1 multicast
             [3] reply_topic  str, not empty; or nil when no reply is wanted
             [4] status       int of any size (outside the 64-bit range as extension 6)
             [5] headers      map of str to str
             [6] content      any value below

Content is a msgpack value: nil, bool, int, float (always written as float 64), str, bin, array and
map (keys of any type below that is hashable once decoded), plus these extension types (msgpack ext,
application codes)::

    code  type                data
    1     uuid.UUID           16 bytes, ``UUID.bytes``
    2     datetime.datetime   struct ``>HBBBBBBI``: year, month, day, hour, minute, second, fold,
                              microsecond (12 bytes); an aware datetime appends ``>q``, its UTC offset
                              in microseconds (20 bytes in all)
    3     datetime.date       struct ``>HBB``: year, month, day (4 bytes)
    4     datetime.time       struct ``>BBBBI``: hour, minute, second, fold, microsecond (8 bytes); an
                              aware time appends ``>q``, its UTC offset in microseconds (16 bytes)
    5     decimal.Decimal     ``str(value)`` in ASCII, e.g. ``-0.00``, ``1E+3``, ``-Infinity``, ``sNaN``;
                              it must be canonical (what ``str`` gives back)
    6     int                 an int outside msgpack's range (-2**63 to 2**64 - 1): signed two's
                              complement, big-endian, as ``int.to_bytes(..., signed=True)``

The decoder also reads msgpack's own timestamp extension (-1) as an aware UTC datetime; the encoder
never writes it. ``extensions`` writes and reads these types: it holds this module's hooks into msgpack.

Round trips are exact (``decode(encode(m)) == m``, floats bit for bit, Decimal digit for digit), except:

- a tuple comes back as a list, a bytearray or memoryview as bytes, and a subclass of a supported type
  (an ``IntEnum`` member, an ``OrderedDict``) as its base type;
- an aware datetime or time comes back with a fixed-offset ``datetime.timezone`` of the same UTC
  offset: a ``ZoneInfo("Europe/Madrid")`` comes back as ``timezone(timedelta(hours=2))`` in summer (the
  same instant, but the zone's name and rules are not sent). A tzinfo whose ``utcoffset`` is None is
  naive, as Python itself treats it;
- a dict key must stay hashable once decoded: a tuple key would come back as a list, so it is not
  supported. The encoder does not walk content to look for one (that would double the cost of every
  message); the receiving decoder rejects such a frame.

Anything else (a set, an arbitrary object) fails to encode with ``FrameEncodeError``. A ``msgpack.ExtType``
or ``msgpack.Timestamp`` in content is written by msgpack itself, unchecked: do not put one there.

Limits: the two frames together hold at most ``max_frame_size`` bytes (16 MiB by default), checked on
both sides; content nests less than 1024 levels deep (msgpack's limit, the same both ways).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from uuid import UUID, SafeUUID

import msgpack  # type: ignore[import-untyped]

from ..exceptions import FrameDecodeError, FrameEncodeError
from .extensions import SUPPORTED_CONTENT, decode_ext, encode_ext, show
from .messages import (
    BrokerMessage,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    BrokerMessageV1Strategy,
)

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "MULTICAST_CODE",
    "UNICAST_CODE",
    "FrameCodec",
    "decode_message",
    "encode_message",
]

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
"""The largest message, topic and body frames together, in bytes."""

WIRE_VERSION: Final = 1
"""The version written in every body, and the only one the decoder reads."""

Frame = bytes | bytearray | memoryview
"""What ``decode`` takes for a frame; at run time anything exporting a contiguous buffer (``zmq.Frame``) works."""

UNICAST_CODE: Final = 0
"""``BrokerMessageV1Strategy.UNICAST`` on the wire, and in every transport's ``publish``."""
MULTICAST_CODE: Final = 1
"""``BrokerMessageV1Strategy.MULTICAST`` on the wire; the routing takes every other code as unicast."""

_UNICAST: Final = BrokerMessageV1Strategy.UNICAST
_MULTICAST: Final = BrokerMessageV1Strategy.MULTICAST
_STRATEGY_BY_CODE: Final[dict[int, BrokerMessageV1Strategy]] = {
    UNICAST_CODE: _UNICAST,
    MULTICAST_CODE: _MULTICAST,
}
_STATUS_BY_CODE: Final[dict[int, int]] = {int(status): status for status in BrokerMessageV1Status}

_unpackb = msgpack.unpackb

# Building a message through its dataclass constructor costs 2.3 us, more than the whole rest of a
# decode: the decoder validates every field itself, then fills the slots directly.
_new = object.__new__
_set_topic = BrokerMessage.__dict__["topic"].__set__
_set_payload = BrokerMessage.__dict__["payload"].__set__
_set_identifier = BrokerMessage.__dict__["identifier"].__set__
_set_strategy = BrokerMessage.__dict__["strategy"].__set__
_set_reply_topic = BrokerMessage.__dict__["reply_topic"].__set__
_set_content = BrokerMessageV1Payload.__dict__["content"].__set__
_set_headers = BrokerMessageV1Payload.__dict__["headers"].__set__
_set_status = BrokerMessageV1Payload.__dict__["status"].__set__
# The same for the identifier's UUID, whose constructor (0.85 us) checks what 16 bytes cannot get wrong.
_set_uuid_int = UUID.__dict__["int"].__set__
_set_uuid_is_safe = UUID.__dict__["is_safe"].__set__
_UUID_SAFETY_UNKNOWN = SafeUUID.unknown
_from_bytes = int.from_bytes


class FrameCodec:
    """Encodes messages to frames and decodes frames to messages, following the wire spec above.

    ``encode`` reuses one ``msgpack.Packer``, which is not thread-safe: give each thread (each
    actor) its own codec. ``decode`` keeps no state and may be shared.

    Args:
        max_frame_size: The largest message accepted either way, topic and body frames together, in bytes.

    Raises:
        ValueError: when ``max_frame_size`` is not a positive int.
    """

    __slots__ = ("_max_frame_size", "_pack")

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if type(max_frame_size) is not int or max_frame_size <= 0:
            raise ValueError(f"max_frame_size must be a positive int of bytes, got {max_frame_size!r}")
        self._max_frame_size = max_frame_size
        packer = msgpack.Packer(default=encode_ext, use_bin_type=True, datetime=False, autoreset=True)
        self._pack: Callable[[Any], bytes] = packer.pack

    @property
    def max_frame_size(self) -> int:
        """The largest message accepted either way, in bytes."""
        return self._max_frame_size

    def encode(self, message: BrokerMessage, *, headers: Mapping[str, str] | None = None) -> list[bytes]:
        """Return the two frames of ``message``: its topic and its body.

        Args:
            message: The message.
            headers: Written instead of the message's own headers, when given: the frames of a copy that
                differs only in them, without building the copy (an outbox stamps every message).

        Raises:
            FrameEncodeError: when the content holds a type the wire cannot carry, a header is not
                a str, or the encoded message is larger than ``max_frame_size``.
        """
        strategy = message.strategy
        if strategy is _UNICAST:
            strategy_code = UNICAST_CODE
        elif strategy is _MULTICAST:
            strategy_code = MULTICAST_CODE
        else:
            raise FrameEncodeError(f"strategy {strategy!r} has no wire code; known: UNICAST, MULTICAST")
        payload = message.payload
        if headers is None:
            headers = payload.headers
        for key, value in headers.items():
            # Checked by the payload's constructor, but the dict stays mutable (handlers add headers to
            # their replies): a wrong one here would reach the receiver only to be refused there.
            if (type(key) is not str and not isinstance(key, str)) or (
                type(value) is not str and not isinstance(value, str)
            ):
                raise FrameEncodeError(
                    f"the headers of the message to {message.topic!r} must map str to str, got "
                    f"{show(key)}: {show(value)}; convert the value with str() before setting it"
                )
        try:
            body = self._pack(
                [
                    WIRE_VERSION,
                    message.identifier.int.to_bytes(16),
                    strategy_code,
                    message.reply_topic,
                    payload.status,
                    headers,
                    payload.content,
                ]
            )
            topic = message.topic.encode()
        except FrameEncodeError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            # msgpack's recursion limit, a str holding a lone surrogate, a tzinfo that fails ...
            raise FrameEncodeError(
                f"cannot encode the message to {message.topic!r}: {str(exc).rstrip('.')}; content may hold "
                f"{SUPPORTED_CONTENT}, nested less than 1024 levels deep, and strings must be valid Unicode"
            ) from exc
        size = len(topic) + len(body)
        if size > self._max_frame_size:
            raise FrameEncodeError(
                f"the message to {message.topic!r} encodes to {size} bytes, over the limit of "
                f"{self._max_frame_size} bytes; send less content, or raise max_frame_size on both the "
                "sending and the receiving codec"
            )
        return [topic, body]

    def decode(self, frames: Sequence[Frame]) -> BrokerMessageV1:
        """Return the message held by ``frames``, checking every rule of the wire spec.

        Args:
            frames: The topic frame and the body frame, each bytes-like: ``bytes``, ``bytearray``,
                ``memoryview`` (or anything else exporting a contiguous buffer, like ``zmq.Frame``).

        Raises:
            FrameDecodeError: when the frames are not a valid message, saying what is wrong. No
                other exception escapes, whatever the input.
        """
        topic_frame: Frame
        body_frame: Frame
        try:
            topic_frame, body_frame = frames
        except (TypeError, ValueError) as exc:
            raise FrameDecodeError(
                f"a message is exactly 2 frames (topic, body), got {_count_frames(frames)}"
            ) from exc
        if type(topic_frame) is not bytes:
            topic_frame = bytes(_bytes_view(topic_frame, "topic"))  # small: a copy costs nothing
        if type(body_frame) is not bytes:
            body_frame = _bytes_view(body_frame, "body")
        size = len(topic_frame) + len(body_frame)
        if size > self._max_frame_size:
            raise FrameDecodeError(
                f"the message is {size} bytes, over the limit of {self._max_frame_size} bytes; raise "
                "max_frame_size on the receiving codec if the sender is right to send that much"
            )
        if not topic_frame:
            raise FrameDecodeError("the topic frame is empty; a topic is a non-empty UTF-8 string")
        try:
            topic = topic_frame.decode()
        except UnicodeDecodeError as exc:
            raise FrameDecodeError(f"the topic frame is not valid UTF-8: {show(topic_frame)}") from exc
        try:
            # max_str_len, max_bin_len and the other limits default to the body's own length, so no
            # declared length can make msgpack allocate more than the frame size.
            body = _unpackb(body_frame, ext_hook=decode_ext, timestamp=3, strict_map_key=False)
        except FrameDecodeError:
            raise
        except Exception as exc:
            # msgpack's FormatError, StackError and ExtraData, a ValueError for a truncated body, a
            # TypeError for an unhashable map key, a RecursionError ...
            raise FrameDecodeError(
                f"the body of a message to {topic!r} is not valid msgpack: {type(exc).__name__}: {exc}"
            ) from exc

        return _message(topic, body)


def _message(topic: str, body: Any) -> BrokerMessageV1:
    """Check a decoded body against the wire spec and return its message."""
    if type(body) is not list:
        raise FrameDecodeError(f"the body must be a msgpack array of 7 items, got {show(body)}")
    if len(body) != 7:
        if body:
            _check_version(body[0])
        raise FrameDecodeError(f"the body must be an array of 7 items, got {len(body)}: {show(body)}")
    version, identifier, strategy_code, reply_topic, status, headers, content = body
    if version != 1 or type(version) is not int:
        _check_version(version)
    if type(identifier) is not bytes or len(identifier) != 16:
        raise FrameDecodeError(f"the identifier must be a bin of 16 bytes, got {show(identifier)}")
    strategy = _STRATEGY_BY_CODE.get(strategy_code) if type(strategy_code) is int else None
    if strategy is None:
        raise FrameDecodeError(
            f"the strategy must be 0 (unicast) or 1 (multicast), got {show(strategy_code)}"
        )
    if reply_topic is not None and (type(reply_topic) is not str or not reply_topic):
        raise FrameDecodeError(f"the reply topic must be a non-empty str or nil, got {show(reply_topic)}")
    if type(status) is not int:
        raise FrameDecodeError(f"the status must be an int, got {show(status)}")
    if type(headers) is not dict:
        raise FrameDecodeError(f"the headers must be a map of str to str, got {show(headers)}")
    for key, value in headers.items():
        if type(key) is not str or type(value) is not str:
            raise FrameDecodeError(f"the headers must be a map of str to str, got {show(key)}: {show(value)}")

    uuid = _new(UUID)
    _set_uuid_int(uuid, _from_bytes(identifier))
    _set_uuid_is_safe(uuid, _UUID_SAFETY_UNKNOWN)
    payload = _new(BrokerMessageV1Payload)
    _set_content(payload, content)
    _set_headers(payload, headers)
    _set_status(payload, _STATUS_BY_CODE.get(status, status))
    message: BrokerMessageV1 = _new(BrokerMessageV1)
    _set_topic(message, topic)
    _set_payload(message, payload)
    _set_identifier(message, uuid)
    _set_strategy(message, strategy)
    _set_reply_topic(message, reply_topic)
    return message


# --- the module's functions ----------------------------------------------------------------------

_local = threading.local()
_shared_decoder = FrameCodec()


def encode_message(message: BrokerMessage, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> list[bytes]:
    """Return the two frames of ``message``, with a codec of the calling thread's own.

    Raises:
        FrameEncodeError: as ``FrameCodec.encode``.
    """
    if max_frame_size != DEFAULT_MAX_FRAME_SIZE:
        return FrameCodec(max_frame_size=max_frame_size).encode(message)
    try:
        codec: FrameCodec = _local.codec
    except AttributeError:
        codec = _local.codec = FrameCodec()
    return codec.encode(message)


def decode_message(
    frames: Sequence[Frame], *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> BrokerMessageV1:
    """Return the message held by ``frames``; safe to call from any thread.

    Raises:
        FrameDecodeError: as ``FrameCodec.decode``.
    """
    if max_frame_size != DEFAULT_MAX_FRAME_SIZE:
        return FrameCodec(max_frame_size=max_frame_size).decode(frames)
    return _shared_decoder.decode(frames)


# --- errors ------------------------------------------------------------------------------------------


def _check_version(version: object) -> None:
    if version == 1 and type(version) is int:
        return
    raise FrameDecodeError(
        f"unsupported wire version {show(version)}; this codec reads version {WIRE_VERSION} only "
        "(is the peer running another release of minos.networks?)"
    )


def _count_frames(frames: object) -> str:
    try:
        return str(len(frames))  # type: ignore[arg-type]
    except Exception:
        return show(frames)


def _bytes_view(frame: object, name: str) -> memoryview:
    try:
        view = memoryview(frame)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise FrameDecodeError(
            f"the {name} frame must be bytes-like (bytes, bytearray or memoryview), got {show(frame)}"
        ) from exc
    if not view.c_contiguous:
        raise FrameDecodeError(f"the {name} frame must be a contiguous buffer, got {show(frame)}")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view
