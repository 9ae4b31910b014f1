"""The msgpack extension types of the wire (codes 1-6 of the spec in ``frames``), and the safe repr of its errors.

``encode_ext`` is the ``msgpack.Packer``'s ``default`` hook: it writes the content values msgpack cannot
write itself (UUID, datetime, date, time, Decimal, ints outside msgpack's range) as extension types.
``decode_ext`` is ``msgpack.unpackb``'s ``ext_hook``: it reads them back, strictly, raising
``FrameDecodeError`` for anything the spec does not allow. ``show`` is the short repr, safe on any value
a peer can send, that the error messages of both this module and ``frames`` use.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from struct import Struct
from typing import Any, Final
from uuid import UUID, SafeUUID

import msgpack  # type: ignore[import-untyped]

from ..exceptions import FrameDecodeError, FrameEncodeError

__all__ = [
    "EXT_BIGINT",
    "EXT_DATE",
    "EXT_DATETIME",
    "EXT_DECIMAL",
    "EXT_TIME",
    "EXT_UUID",
    "SUPPORTED_CONTENT",
    "decode_ext",
    "encode_ext",
    "show",
]

EXT_UUID: Final = 1
EXT_DATETIME: Final = 2
EXT_DATE: Final = 3
EXT_TIME: Final = 4
EXT_DECIMAL: Final = 5
EXT_BIGINT: Final = 6

_DATETIME = Struct(">HBBBBBBI")
_DATETIME_AWARE = Struct(">HBBBBBBIq")
_DATE = Struct(">HBB")
_TIME = Struct(">BBBBI")
_TIME_AWARE = Struct(">BBBBIq")
_MICROSECOND = timedelta(microseconds=1)
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# Traps a malformed string whatever the thread's own decimal context says; never rounds (the
# Decimal constructor keeps every digit whatever the context's precision).
_DECIMAL_CONTEXT = Context(traps=[InvalidOperation])

SUPPORTED_CONTENT: Final = (
    "None, bool, int, float, str, bytes, list, tuple, dict, UUID, datetime, date, time and Decimal"
)
"""What content may hold, as error messages say it."""

_ExtType = msgpack.ExtType
# ExtType's own constructor checks its arguments in Python, which costs more than the whole rest of
# writing a UUID; ours are right by construction.
_new_tuple = tuple.__new__
# The same for UUID, whose constructor (0.85 us) checks what 16 bytes cannot get wrong.
_new = object.__new__
_set_uuid_int = UUID.__dict__["int"].__set__
_set_uuid_is_safe = UUID.__dict__["is_safe"].__set__
_UUID_SAFETY_UNKNOWN = SafeUUID.unknown
_from_bytes = int.from_bytes


# --- encoding the extension types -------------------------------------------------------------


def _encode_uuid(value: UUID) -> Any:
    return _new_tuple(_ExtType, (EXT_UUID, value.int.to_bytes(16)))


def _encode_datetime(value: datetime) -> Any:
    offset = value.utcoffset()
    if offset is None:
        data = _DATETIME.pack(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.fold,
            value.microsecond,
        )  # fmt: skip
    else:
        data = _DATETIME_AWARE.pack(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.fold,
            value.microsecond, offset // _MICROSECOND,
        )  # fmt: skip
    return _new_tuple(_ExtType, (EXT_DATETIME, data))


def _encode_date(value: date) -> Any:
    return _new_tuple(_ExtType, (EXT_DATE, _DATE.pack(value.year, value.month, value.day)))


def _encode_time(value: time) -> Any:
    offset = value.utcoffset()
    if offset is None:
        data = _TIME.pack(value.hour, value.minute, value.second, value.fold, value.microsecond)
    else:
        data = _TIME_AWARE.pack(
            value.hour, value.minute, value.second, value.fold, value.microsecond, offset // _MICROSECOND
        )
    return _new_tuple(_ExtType, (EXT_TIME, data))


def _encode_decimal(value: Decimal) -> Any:
    return _new_tuple(_ExtType, (EXT_DECIMAL, str(value).encode("ascii")))


def _encode_bigint(value: int) -> Any:
    # msgpack hands over only the ints it cannot write itself, those outside -2**63 .. 2**64 - 1.
    data = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
    return _new_tuple(_ExtType, (EXT_BIGINT, data))


# Exact types first; subclasses are found by isinstance, in this order (a datetime is also a date).
_EXT_ENCODERS: Final[dict[type, Callable[[Any], Any]]] = {
    UUID: _encode_uuid,
    datetime: _encode_datetime,
    date: _encode_date,
    time: _encode_time,
    Decimal: _encode_decimal,
    int: _encode_bigint,
}


def encode_ext(value: Any) -> Any:
    """msgpack's ``default`` hook, called only for what msgpack cannot write itself."""
    kind = type(value)
    if kind is UUID:  # by far the most common: spare it the table
        return _new_tuple(_ExtType, (EXT_UUID, value.int.to_bytes(16)))
    encoder = _EXT_ENCODERS.get(kind)
    if encoder is None:
        for base, candidate in _EXT_ENCODERS.items():
            if isinstance(value, base):
                encoder = candidate
                break
        else:
            raise FrameEncodeError(
                f"cannot encode a {kind.__module__}.{kind.__qualname__} in a message: {show(value)}; "
                f"content may hold {SUPPORTED_CONTENT}, nested in lists and dicts"
            )
    return encoder(value)


# --- decoding the extension types ----------------------------------------------------------------

_timezones: dict[int, timezone] = {}


def _fixed_timezone(microseconds: int) -> timezone:
    # Most traffic carries a handful of offsets; a bounded cache spares building one per value.
    zone = _timezones.get(microseconds)
    if zone is None:
        try:
            zone = timezone(microseconds * _MICROSECOND)
        except (ValueError, OverflowError) as exc:
            raise FrameDecodeError(f"a UTC offset of {microseconds} microseconds is out of range") from exc
        if len(_timezones) < 256:
            _timezones[microseconds] = zone
    return zone


def _decode_uuid(data: bytes) -> UUID:
    if len(data) != 16:
        raise FrameDecodeError(f"a UUID (extension {EXT_UUID}) is 16 bytes, got {show(data)}")
    uuid = _new(UUID)
    _set_uuid_int(uuid, _from_bytes(data))
    _set_uuid_is_safe(uuid, _UUID_SAFETY_UNKNOWN)
    return uuid


def _decode_datetime(data: bytes) -> datetime:
    try:
        if len(data) == _DATETIME.size:
            year, month, day, hour, minute, second, fold, microsecond = _DATETIME.unpack(data)
            return datetime(year, month, day, hour, minute, second, microsecond, fold=fold)
        if len(data) == _DATETIME_AWARE.size:
            year, month, day, hour, minute, second, fold, microsecond, offset = _DATETIME_AWARE.unpack(data)
            zone = _fixed_timezone(offset)
            return datetime(year, month, day, hour, minute, second, microsecond, zone, fold=fold)
    except ValueError as exc:
        raise FrameDecodeError(
            f"a datetime (extension {EXT_DATETIME}) is invalid: {exc}: {show(data)}"
        ) from exc
    raise FrameDecodeError(
        f"a datetime (extension {EXT_DATETIME}) is 12 or 20 bytes, got {len(data)}: {show(data)}"
    )


def _decode_date(data: bytes) -> date:
    if len(data) != _DATE.size:
        raise FrameDecodeError(f"a date (extension {EXT_DATE}) is 4 bytes, got {len(data)}: {show(data)}")
    try:
        return date(*_DATE.unpack(data))
    except ValueError as exc:
        raise FrameDecodeError(f"a date (extension {EXT_DATE}) is invalid: {exc}: {show(data)}") from exc


def _decode_time(data: bytes) -> time:
    try:
        if len(data) == _TIME.size:
            hour, minute, second, fold, microsecond = _TIME.unpack(data)
            return time(hour, minute, second, microsecond, fold=fold)
        if len(data) == _TIME_AWARE.size:
            hour, minute, second, fold, microsecond, offset = _TIME_AWARE.unpack(data)
            return time(hour, minute, second, microsecond, _fixed_timezone(offset), fold=fold)
    except ValueError as exc:
        raise FrameDecodeError(f"a time (extension {EXT_TIME}) is invalid: {exc}: {show(data)}") from exc
    raise FrameDecodeError(f"a time (extension {EXT_TIME}) is 8 or 16 bytes, got {len(data)}: {show(data)}")


def _decode_decimal(data: bytes) -> Decimal:
    try:
        text = data.decode("ascii")
        value = Decimal(text, _DECIMAL_CONTEXT)
    except (UnicodeDecodeError, InvalidOperation) as exc:
        raise FrameDecodeError(f"a Decimal (extension {EXT_DECIMAL}) is invalid: {show(data)}") from exc
    # Decimal() also takes spaces, underscores and lowercase; the wire holds only what str() writes.
    if str(value) != text:
        raise FrameDecodeError(
            f"a Decimal (extension {EXT_DECIMAL}) must be written as str() writes it, got {show(data)}"
        )
    return value


def _decode_bigint(data: bytes) -> int:
    value = _from_bytes(data, "big", signed=True)
    if _INT_MIN <= value <= _INT_MAX:
        raise FrameDecodeError(
            f"a big int (extension {EXT_BIGINT}) must be outside the msgpack int range, got {show(data)}"
        )
    return value


_EXT_DECODERS: Final[dict[int, Callable[[bytes], Any]]] = {
    EXT_UUID: _decode_uuid,
    EXT_DATETIME: _decode_datetime,
    EXT_DATE: _decode_date,
    EXT_TIME: _decode_time,
    EXT_DECIMAL: _decode_decimal,
    EXT_BIGINT: _decode_bigint,
}


def decode_ext(code: int, data: bytes) -> Any:
    """msgpack's ``ext_hook``."""
    if code == EXT_UUID and len(data) == 16:  # by far the most common: spare it the table and a call
        uuid = _new(UUID)
        _set_uuid_int(uuid, _from_bytes(data))
        _set_uuid_is_safe(uuid, _UUID_SAFETY_UNKNOWN)
        return uuid
    decoder = _EXT_DECODERS.get(code)
    if decoder is None:
        raise FrameDecodeError(
            f"unknown extension type {code} ({len(data)} bytes); this codec reads {sorted(_EXT_DECODERS)}"
        )
    return decoder(data)


# --- showing values in error messages -----------------------------------------------------------


class _Repr(reprlib.Repr):
    """A ``repr`` for error messages: short, and safe on any value a peer can send."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = 80
        self.maxother = 80
        self.maxlist = self.maxtuple = self.maxdict = 8

    def repr_bytes(self, value: bytes, level: int) -> str:
        if len(value) <= 40:
            return repr(value)
        return f"{value[:40]!r}... ({len(value)} bytes)"

    def repr_int(self, value: int, level: int) -> str:
        if value.bit_length() > 256:
            return f"<int of {value.bit_length()} bits>"
        return repr(value)


_repr = _Repr()


def show(value: object) -> str:
    """``value`` for an error message: short, and never raising, whatever a peer sent."""
    try:
        return _repr.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
