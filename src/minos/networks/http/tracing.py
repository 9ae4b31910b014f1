"""Server spans for the HTTP port: an aiohttp middleware continuing the ``traceparent`` of each request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..tracing import Tracing

__all__ = ["server_spans"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def server_spans(tracing: Tracing) -> Any:
    """An aiohttp middleware giving each request a SERVER span per the OpenTelemetry HTTP conventions.

    The span is named ``<METHOD> <route>`` (the route's pattern, e.g. ``/orders/{id}``), its parent is
    the request's ``traceparent`` (and ``tracestate``), and it is the current span while the handler
    runs, so the messages the handler publishes are its children. A 5xx answer fails the span. It goes
    outermost, so it sees the status the error middleware answered with.
    """

    @web.middleware
    async def trace(request: web.Request, handler: _Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
            "network.protocol.version": f"{request.version.major}.{request.version.minor}",
        }
        if route is not None:
            attributes["http.route"] = route
        if request.query_string:
            attributes["url.query"] = request.query_string
        host = request.url.host
        if host is not None:
            attributes["server.address"] = host
        if request.url.port is not None:
            attributes["server.port"] = request.url.port
        if request.remote is not None:
            attributes["client.address"] = request.remote
        user_agent = request.headers.get("User-Agent")
        if user_agent is not None:
            attributes["user_agent.original"] = user_agent
        name = f"{request.method} {route}" if route is not None else request.method
        span = tracing.start(name, attributes, kind="SERVER", parent=tracing.extract(request.headers))
        token = tracing.activate(span)
        try:
            response = await handler(request)
        except web.HTTPException as error:  # a redirect or an error aiohttp answers itself
            _answered(tracing, span, error.status)
            raise
        except BaseException as error:
            span.set_attribute("error.type", type(error).__qualname__)
            tracing.fail(span, f"{type(error).__name__}: {error}", error)
            raise
        else:
            _answered(tracing, span, response.status)
            return response
        finally:
            tracing.deactivate(token)
            span.end()

    return trace


def _answered(tracing: Tracing, span: Any, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:  # a 4xx is the client's error, not the server's (the HTTP conventions)
        span.set_attribute("error.type", str(status))
        tracing.fail(span, f"answered {status}")
