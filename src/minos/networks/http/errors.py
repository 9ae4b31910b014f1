"""JSON error bodies, also for the requests aiohttp's HTTP parser refuses before any handler runs.

A handler's errors go through the connector's middleware. A request line or a header over the limits, or
bytes that are not HTTP, never reach it: aiohttp answers those itself, in ``text/plain`` quoting the
offending bytes, and logs them with a traceback. :class:`JsonErrorRunner` answers them like every other
error instead::

    request line over MAX_REQUEST_LINE bytes        414, how long it may be
    header line over MAX_HEADER_LINE bytes          431, how long it may be
    more than aiohttp's 128 headers                 431
    anything else that is not HTTP/1.1              400, the parser's reason, without the request's bytes

and logs them at DEBUG, since a client's mistake is not the server's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .requests import JSON_CONTENT_TYPE

__all__ = ["MAX_HEADER_LINE", "MAX_REQUEST_LINE", "JsonErrorRunner", "error_response"]

logger = logging.getLogger(__name__)

MAX_REQUEST_LINE: Final = 8190
"""The longest request line (method, URL, version) served, in bytes: aiohttp's default."""
MAX_HEADER_LINE: Final = 8192
"""The longest header (name or value) served, in bytes; it differs from ``MAX_REQUEST_LINE`` so the
parser's error, which gives only the limit it hit, says which of the two was too long."""


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The JSON error body ``{"status": N, "message": "..."}`` with ``status`` (500 if not an error status)."""
    if not 400 <= status <= 599:
        logger.error("an error response cannot have status %r (%s); answering 500 instead", status, message)
        status, message = 500, "Internal error: invalid error status"
    if not message:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Error"
    body = json.dumps({"status": status, "message": message}, separators=(",", ":")).encode()
    sent = {
        name: value
        for name, value in (headers or {}).items()
        if name.lower() not in ("content-type", "content-length")
    }
    sent[hdrs.CONTENT_TYPE] = JSON_CONTENT_TYPE
    return web.Response(body=body, status=status, headers=sent)


def parser_error(exc: BaseException | None, status: int) -> tuple[int, str]:
    """The status and message for a request the parser refused with ``exc`` (aiohttp chose ``status``)."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == MAX_REQUEST_LINE:
            return 414, f"the request line is longer than {MAX_REQUEST_LINE} bytes; shorten the URL"
        return 431, f"a header is longer than {MAX_HEADER_LINE} bytes; send shorter headers"
    if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
        return 431, "too many headers; send fewer"
    if isinstance(exc, BadHttpMessage):
        return 400, f"the request is not valid HTTP/1.1 ({type(exc).__name__})"
    return status, ""  # error_response puts the status's phrase


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering what its parser refuses with a JSON error body."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # the server's own failure: aiohttp logs it, with its traceback
            super().handle_error(request, status, exc, message)
        else:
            logger.debug("refused a request from %s: %r", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response was being sent already; the connection is dropped")
        response = error_response(*parser_error(exc, status))
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = _JsonErrorHandler  # aiohttp offers no hook for its handler class
        return handler


class JsonErrorRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer what aiohttp's parser refuses with JSON (see the module)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, max_line_size=MAX_REQUEST_LINE, max_field_size=MAX_HEADER_LINE, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same object, making _JsonErrorHandlers
        return server
