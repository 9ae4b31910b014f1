"""HttpRequest and HttpResponse: what REST handlers take and return, with their body codecs and coercion."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, Final
from uuid import UUID

import msgpack  # type: ignore[import-untyped]
from aiohttp import web
from multidict import MultiMapping

from ..exceptions import ResponseException
from ..protocol.requests import Request, Response, parse_user_header

__all__ = [
    "JSON_CONTENT_TYPE",
    "Coercion",
    "HttpRequest",
    "HttpResponse",
    "HttpResponseException",
    "encode_content",
]

JSON_CONTENT_TYPE: Final = "application/json"

Coercion = Callable[..., Any] | Mapping[str, Callable[[Any], Any]]
"""What ``type_`` may be: a callable applied to the whole value (``type_(**data)`` for a dict, else
``type_(data)``), or a mapping of field name to converter applied to those fields that are present."""

_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_MSGPACK_TYPES: Final = frozenset({"application/msgpack", "application/x-msgpack"})
_OCTET_STREAM: Final = "application/octet-stream"
_SUPPORTED: Final = (
    "application/json (or */*+json), application/x-www-form-urlencoded, multipart/form-data, text/*, "
    "application/octet-stream, application/msgpack"
)
_NO_CONTENT: Final = object()


class HttpResponseException(ResponseException):
    """Raised by a REST handler to answer with an error status (400 by default) and a message.

    The caller receives ``{"status": status, "message": message}`` as JSON with that status, which must be
    an error status (400 to 599); any ``ResponseException`` is answered the same way.
    """


class HttpRequest(Request):
    """The request a REST handler receives: an aiohttp request seen through the minos ``Request`` API.

    Parameters come from two places, kept apart: ``url_params()`` are the path parameters
    (``/users/{user_id}``) and ``query_params()`` the query string (``?page=2``); minos 0.7 had the two
    swapped. ``params()`` merges them, a path parameter winning over a query parameter of the same name.
    A query key given more than once becomes a list of its values, in order; any other value is a str.

    Every ``type_`` argument is a :data:`Coercion`: ``None`` (the value as decoded), a callable such as a
    dataclass or a validating model (called as ``type_(**data)`` for a dict, ``type_(data)`` otherwise), or
    a mapping of field to converter such as ``{"user_id": UUID, "page": int}`` (fields absent from the data
    are left absent). A conversion that raises ``TypeError`` or ``ValueError`` answers 400, naming the field
    or the type. A dataclass does not convert its fields' values: use the mapping form for that.

    Args:
        raw: The aiohttp request.

    Raises:
        RequestException: The ``user`` header is not a UUID (the caller receives 400).
    """

    def __init__(self, raw: web.Request) -> None:
        self.raw = raw
        self._user: UUID | None = parse_user_header(raw.headers.get("user"))
        self._headers: dict[str, str] | None = None
        self._decoded: Any = _NO_CONTENT

    @property
    def user(self) -> UUID | None:
        """The user named by the ``user`` header, if any."""
        return self._user

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers, as sent (a header sent twice keeps its last value); a copy per request."""
        if self._headers is None:
            self._headers = dict(self.raw.headers.items())
        return self._headers

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters (``application/octet-stream`` if
        the request does not say)."""
        return self.raw.content_type

    @property
    def has_content(self) -> bool:
        """Whether the request has a body."""
        return self.raw.body_exists

    async def content(self, type_: Coercion | None = None, **kwargs: Any) -> Any:
        """The body, decoded by its content type, then coerced by ``type_``.

        ======================================================  ==============================================
        content type                                            value
        ======================================================  ==============================================
        ``application/json``, ``*/*+json``                      the JSON value
        ``application/x-www-form-urlencoded``,                  a dict of str (a repeated field: a list; a
        ``multipart/form-data``                                 file part: its bytes)
        ``text/*``                                              str, decoded with the request's charset (utf-8)
        ``application/octet-stream`` (or none given)            bytes
        ``application/msgpack``, ``application/x-msgpack``      the msgpack value
        ======================================================  ==============================================

        Args:
            type_: How to coerce the decoded value (see the class docstring).

        Raises:
            NotHasContentException: The request has no body (the caller receives 400).
            HttpResponseException: 415 for another content type; 400 for a body that does not decode or
                does not coerce; 413 for a body over the size limit.
        """
        return await super().content(type_=type_, **kwargs)

    async def _content(self, type_: Coercion | None = None, **kwargs: Any) -> Any:
        if self._decoded is _NO_CONTENT:
            self._decoded = await self._decode()
        return _coerce(self._decoded, type_, "the body")

    async def _decode(self) -> Any:
        raw, content_type = self.raw, self.raw.content_type
        if content_type == JSON_CONTENT_TYPE or content_type.endswith("+json"):
            body = await raw.read()
            try:
                return json.loads(body)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise HttpResponseException(f"the body is not valid JSON: {exc}", status=400) from None
            except RecursionError:  # valid JSON, nested deeper than the decoder's recursion allows
                raise HttpResponseException(
                    "the JSON body nests arrays or objects too deeply to decode; send a flatter document",
                    status=400,
                ) from None
        if content_type in _FORM_TYPES:
            return _form_dict(await raw.post())
        if content_type.startswith("text/"):
            try:
                return await raw.text()
            except (UnicodeDecodeError, LookupError) as exc:
                raise HttpResponseException(
                    f"the body is not text in charset {raw.charset or 'utf-8'!r}: {exc}", status=400
                ) from None
        if content_type == _OCTET_STREAM:
            return await raw.read()
        if content_type in _MSGPACK_TYPES:
            try:
                return msgpack.unpackb(await raw.read(), raw=False, strict_map_key=False)
            except (ValueError, msgpack.UnpackException) as exc:
                raise HttpResponseException(f"the body is not valid msgpack: {exc}", status=400) from None
        raise HttpResponseException(
            f"content type {content_type!r} is not supported; send one of {_SUPPORTED}", status=415
        )

    @property
    def has_url_params(self) -> bool:
        """Whether the route has path parameters."""
        return bool(self.raw.match_info)

    async def url_params(self, type_: Coercion | None = None, **kwargs: Any) -> Any:
        """The path parameters, e.g. ``{"user_id": "42"}`` for ``/users/{user_id}``, coerced by ``type_``.

        Raises:
            HttpResponseException: 400 when they do not coerce.
        """
        return _coerce(dict(self.raw.match_info), type_, "the path parameters")

    @property
    def has_query_params(self) -> bool:
        """Whether the URL has a query string with at least one parameter."""
        return bool(self.raw.query)

    async def query_params(self, type_: Coercion | None = None, **kwargs: Any) -> Any:
        """The query string's parameters, e.g. ``{"page": "2"}`` for ``?page=2``, coerced by ``type_``.

        Raises:
            HttpResponseException: 400 when they do not coerce.
        """
        return _coerce(_multi_dict(self.raw.query), type_, "the query parameters")

    @property
    def has_params(self) -> bool:
        """Whether the request has path or query parameters."""
        return self.has_url_params or self.has_query_params

    async def params(self, type_: Coercion | None = None, **kwargs: Any) -> Any:
        """The query parameters updated with the path parameters (a path parameter wins), coerced.

        Raises:
            NotHasParamsException: The request has neither (the caller receives 400).
            HttpResponseException: 400 when they do not coerce.
        """
        return await super().params(type_=type_, **kwargs)

    async def _params(self, type_: Coercion | None = None, **kwargs: Any) -> Any:
        merged = _multi_dict(self.raw.query)
        merged.update(self.raw.match_info)
        return _coerce(merged, type_, "the parameters")

    def __repr__(self) -> str:
        return f"HttpRequest({self.raw.method} {self.raw.rel_url})"


class HttpResponse(Response):
    """What a REST handler returns: content, a status and the content type it is sent with.

    The body is encoded by :func:`encode_content`: bytes are sent as they are, a str as text, and anything
    else as JSON (UUID, datetime, date, time, Decimal, Enum, set and dataclasses included) unless
    ``content_type`` is a msgpack type. Without a ``content_type``, it follows the data: bytes are
    ``application/octet-stream``, a str ``text/plain; charset=utf-8``, anything else ``application/json``.
    An explicit content type is kept as given (``"application/json"`` makes a str a JSON string).

    Args:
        data: The content; ``has_content`` is False when it is None (the body is then empty).
        status: The HTTP status, kept exactly.
        content_type: The ``Content-Type`` to send; None derives it from ``data`` as above.
    """

    __slots__ = ("_content_type",)

    def __init__(self, data: Any = None, status: int = 200, content_type: str | None = None) -> None:
        super().__init__(data, status)
        self._content_type = content_type

    @classmethod
    def from_response(cls, response: Response | None) -> HttpResponse:
        """``response`` as the HTTP response the REST port sends for it (minos 0.7's conversion).

        An ``HttpResponse`` is returned as it is; None is an empty 200; any other ``Response`` keeps its
        content and status and is sent as JSON, bytes excepted (``application/octet-stream``).
        """
        if isinstance(response, HttpResponse):
            return response
        if response is None:
            return cls()
        data = response._data
        return cls(data, response.status, None if _is_bytes(data) else JSON_CONTENT_TYPE)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` the response is sent with."""
        return self._content_type or _derived_content_type(self._data)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HttpResponse)
            and super().__eq__(other)
            and self.content_type == other.content_type
        )

    __hash__ = Response.__hash__

    def __repr__(self) -> str:
        return f"HttpResponse({self._data!r}, status={self.status!r}, content_type={self.content_type!r})"


def encode_content(data: Any, content_type: str | None = None) -> tuple[bytes, str]:
    """The body and ``Content-Type`` header that send ``data`` (see :class:`HttpResponse`).

    Args:
        data: The content; None gives an empty body.
        content_type: The content type to send; None derives it from ``data``.

    Returns:
        The body, and the content type, with ``charset=utf-8`` added to a ``text/*`` type without one.

    Raises:
        TypeError: ``data`` cannot be encoded as ``content_type`` (e.g. a dict as ``text/html``, or an
            object JSON does not know).
    """
    if content_type is None:
        content_type = _derived_content_type(data)
    if data is None:
        return b"", content_type
    if _is_bytes(data):
        return bytes(data), content_type
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    if media == JSON_CONTENT_TYPE or media.endswith("+json"):
        return json.dumps(data, default=_plain, separators=(",", ":")).encode(), content_type
    if media in _MSGPACK_TYPES:
        return msgpack.packb(data, default=_plain, use_bin_type=True, datetime=False), content_type
    if isinstance(data, str):
        charset = _charset(parameters)
        if charset is None:
            charset = "utf-8"
            if media.startswith("text/"):
                content_type = f"{content_type}; charset=utf-8"
        return data.encode(charset), content_type
    raise TypeError(
        f"cannot send {type(data).__name__} as {content_type!r}: give bytes or str, or use a JSON or msgpack "
        "content type"
    )


def _derived_content_type(data: Any) -> str:
    if _is_bytes(data):
        return _OCTET_STREAM
    if isinstance(data, str):
        return "text/plain; charset=utf-8"
    return JSON_CONTENT_TYPE


def _is_bytes(data: object) -> bool:
    return isinstance(data, bytes | bytearray | memoryview)


def _charset(parameters: str) -> str | None:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def _plain(value: Any) -> Any:
    """JSON's and msgpack's ``default``: the values they do not know, as ones they do."""
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot encode {type(value).__name__} {value!r}: give a JSON-friendly value instead")


def _multi_dict(items: MultiMapping[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key in items:
        if key not in result:
            values = items.getall(key)
            result[key] = values[0] if len(values) == 1 else list(values)
    return result


def _form_dict(form: MultiMapping[Any]) -> dict[str, Any]:
    result = _multi_dict(form)
    for key, value in result.items():
        if isinstance(value, list):
            result[key] = [_form_value(item) for item in value]
        else:
            result[key] = _form_value(value)
    return result


def _form_value(value: Any) -> Any:
    if isinstance(value, web.FileField):
        with value.file:  # close the spooled file now, not at garbage collection
            data: bytes = value.file.read()
        return data
    return value


def _coerce(data: Any, type_: Coercion | None, what: str) -> Any:
    if type_ is None:
        return data
    if isinstance(type_, Mapping):
        if not isinstance(data, dict):
            raise HttpResponseException(
                f"{what} is {type(data).__name__}, not an object, so its fields cannot be converted",
                status=400,
            )
        converted = dict(data)
        for field, convert in type_.items():
            if field in converted:
                try:
                    converted[field] = convert(converted[field])
                except (TypeError, ValueError) as exc:
                    raise HttpResponseException(
                        f"{what}: field {field!r} = {converted[field]!r} is not a valid {_name(convert)}: {exc}",
                        status=400,
                    ) from None
        return converted
    try:
        return type_(**data) if isinstance(data, dict) else type_(data)
    except (TypeError, ValueError) as exc:
        raise HttpResponseException(f"{what} cannot be made a {_name(type_)}: {exc}", status=400) from None


def _name(value: object) -> str:
    return getattr(value, "__qualname__", None) or repr(value)
