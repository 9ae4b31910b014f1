"""HTTP connectors: the routes of the HTTP routers served by aiohttp, with limits and JSON error bodies."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from yarl import URL

from minos.common import ConfigError, ConfigSource, KnownKeys, as_config

from ..actors import StartStop
from ..enroute import Action, HttpEnrouteDecorator, HttpRouter, RestHttpRouter, import_object
from ..exceptions import (
    MinosRedefinedEnrouteDecoratorException,
    NotSatisfiedCheckerException,
    RequestException,
    ResponseException,
)
from ..protocol.requests import REQUEST_USER_CONTEXT_VAR, Response
from ..tracing import current
from .errors import JsonErrorRunner, error_response
from .requests import JSON_CONTENT_TYPE, HttpRequest, HttpResponse, HttpResponseException, encode_content
from .tracing import server_spans

__all__ = ["HTTP_KEYS", "AioHttpConnector", "HttpAdapter", "HttpConnector"]

logger = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
DEFAULT_CONCURRENCY: Final = 100
DEFAULT_BACKLOG: Final = 1000
DEFAULT_MAX_BODY_SIZE: Final = 1024 * 1024
DEFAULT_SHUTDOWN_TIMEOUT: Final = 10.0
METRICS_PATH: Final = "/metrics"
"""Where ``interfaces.http.metrics: true`` serves the Prometheus metrics."""
HTTP_KEYS: Final[KnownKeys] = dict.fromkeys(
    ("host", "port", "concurrency", "backlog", "max_body_size", "shutdown_timeout", "metrics")
)
"""The keys :meth:`AioHttpConnector.from_config` reads; any other key of ``interfaces.http`` is an error."""

_Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpAdapter:
    """The HTTP routes of a service, gathered from its HTTP routers for a connector to serve.

    Args:
        routers: The routers; their routes that are not HTTP routes are left out.
    """

    def __init__(self, routers: Iterable[HttpRouter]) -> None:
        self.routers = tuple(routers)
        self._routes: dict[HttpEnrouteDecorator, Action] | None = None

    @classmethod
    def from_config(cls, config: ConfigSource, *, services: Iterable[object] | None = None) -> Self:
        """The adapter of the HTTP routers ``config`` lists under ``routers``.

        Without a ``routers`` key that is a ``RestHttpRouter`` of the configured ``services`` and
        ``middleware``; with one, the ``HttpRouter`` subclasses it names, each built ``from_config``.
        ``services``, when given, replaces ``config.services`` (see ``Router.from_config``).

        Raises:
            ImportError: A router's import path cannot be imported.
        """
        config = as_config(config)
        if not config.routers:
            return cls([RestHttpRouter.from_config(config, services=services)])
        classes = [import_object(item) if isinstance(item, str) else item for item in config.routers]
        return cls(
            [
                klass.from_config(config, services=services)
                for klass in classes
                if isinstance(klass, type) and issubclass(klass, HttpRouter)
            ]
        )

    @property
    def routes(self) -> dict[HttpEnrouteDecorator, Action]:
        """Each route (path and method) with its action, built on first access.

        Raises:
            MinosRedefinedEnrouteDecoratorException: Two routers serve the same path and method.
        """
        if self._routes is None:
            routes: dict[HttpEnrouteDecorator, Action] = {}
            owners: dict[tuple[str, str], HttpRouter] = {}
            for router in self.routers:
                for decorator, action in router.routes.items():
                    if isinstance(decorator, HttpEnrouteDecorator):
                        key = (decorator.path, decorator.method)
                        if key in owners:  # the same router listed twice counts twice, as in minos 0.7
                            raise MinosRedefinedEnrouteDecoratorException(
                                f"{decorator.method} {decorator.path} is served by both {owners[key]!r} and "
                                f"{router!r}; give each route one handler, and list each router once"
                            )
                        owners[key] = router
                        routes[decorator] = action
            self._routes = routes
        return self._routes

    def __repr__(self) -> str:
        return f"HttpAdapter({list(self.routers)!r})"


RawRequest = TypeVar("RawRequest")
"""The request type of the server a connector wraps (``aiohttp.web.Request`` for ``AioHttpConnector``)."""

RawResponse = TypeVar("RawResponse")
"""The response type of the server a connector wraps (``aiohttp.web.Response`` for ``AioHttpConnector``)."""


class HttpConnector(StartStop, ABC, Generic[RawRequest, RawResponse]):
    """Serves the adapter's routes over HTTP, in the event loop that calls :meth:`start`.

    ``HttpPort`` runs a connector in an actor's own loop; handlers run in that loop. The class is generic
    in the server's request and response types, as in minos 0.7 (``HttpConnector[Any, Any]``).

    Args:
        adapter: The routes to serve (a router is wrapped in an adapter).
        host: The address to listen on.
        port: The TCP port; 0 picks a free one, readable as :attr:`bound_port` once started.
        shutdown_timeout: Seconds in-flight requests get to finish at :meth:`stop`.
    """

    def __init__(
        self,
        adapter: HttpAdapter | HttpRouter,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) to 65535, got {port!r}")
        if shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must be 0 or more seconds, got {shutdown_timeout!r}")
        self.adapter = adapter if isinstance(adapter, HttpAdapter) else HttpAdapter([adapter])
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self._bound_port: int | None = None

    @property
    def bound_port(self) -> int | None:
        """The port listened on, once started (kept after stop; a restart binds it again)."""
        return self._bound_port

    @property
    def url(self) -> URL:
        """The server's base URL, e.g. ``http://127.0.0.1:8080``.

        Raises:
            RuntimeError: ``port`` is 0 and the connector was never started.
        """
        port = self._bound_port or self.port
        if not port:
            raise RuntimeError(f"{self!r} picks its port when it starts; start it before asking its url")
        return URL.build(scheme="http", host=self.host, port=port)

    @abstractmethod
    async def start(self) -> None:
        """Listen and serve; returns once the server accepts connections.

        Raises:
            OSError: The address cannot be bound.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Stop listening at once, let in-flight requests finish within ``shutdown_timeout``, then close."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self._bound_port or self.port!r})"


class AioHttpConnector(HttpConnector[web.Request, web.StreamResponse]):
    """Serves the routes with an aiohttp server.

    Limits. At most ``concurrency`` requests are handled at once; up to ``backlog`` more wait for a slot,
    in arrival order, and any beyond those are answered 503 at once (with ``Retry-After: 1``). A body
    larger than ``max_body_size`` bytes is answered 413, before the handler runs when the request declares
    its length, when the handler reads it otherwise.

    Errors. Every error is answered with a JSON body ``{"status": N, "message": "..."}``, never a traceback:

    ===============================================  ============================================
    outcome                                          status, message
    ===============================================  ============================================
    handler raises ``ResponseException(status=N)``   N, its message (N from 400 to 599; another N
                                                     is a handler bug: 500)
    body of an unsupported content type              415, the content types that are supported
    malformed JSON (or msgpack, or text) body        400, what the decoder said (JSON nested too
                                                     deep for the decoder too)
    ``user`` header not a UUID, no body, a checker   400, what is wrong
    not satisfied, params that do not coerce
    body over ``max_body_size``                      413
    no route for the path / not for that method      404 / 405 (with ``Allow``)
    over ``concurrency`` + ``backlog``               503
    request line / a header over aiohttp's limits    414 / 431 (see ``http.errors``); not HTTP: 400
    any other exception, or a handler returning      500, ``Internal error: <type name>`` (the
    something other than a Response or None          traceback is logged)
    ===============================================  ============================================

    A handler's result is sent as: an :class:`HttpResponse` with its content type; a plain ``Response``
    as JSON (bytes as ``application/octet-stream``); ``None`` as 200 with an empty body, as minos 0.7 did. The ``user`` header's UUID is in ``REQUEST_USER_CONTEXT_VAR`` while the handler runs.

    Args:
        adapter: The routes to serve (a router is wrapped in an adapter).
        host: The address to listen on.
        port: The TCP port; 0 picks a free one.
        concurrency: How many requests are handled at once.
        backlog: How many more requests may wait for a slot.
        max_body_size: The largest body accepted, in bytes.
        shutdown_timeout: Seconds in-flight requests get to finish at stop; those still running then are
            cancelled (and get as long again to unwind).
        metrics: Serve this registry's metrics at ``GET /metrics`` (Prometheus text format, outside the
            concurrency limit, so a busy service can still be scraped); None serves no metrics.

    Raises:
        ValueError: A limit is out of range, or a route of the adapter is ``GET /metrics`` too.
    """

    def __init__(
        self,
        adapter: HttpAdapter | HttpRouter,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        concurrency: int = DEFAULT_CONCURRENCY,
        backlog: int = DEFAULT_BACKLOG,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(adapter, host=host, port=port, shutdown_timeout=shutdown_timeout)
        for name, value, least in (
            ("concurrency", concurrency, 1),
            ("backlog", backlog, 0),
            ("max_body_size", max_body_size, 1),
        ):
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value!r}")
        self.concurrency = concurrency
        self.backlog = backlog
        self.max_body_size = max_body_size
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_config(cls, config: ConfigSource, *, services: Iterable[object] | None = None) -> Self:
        """The connector ``interfaces.http`` describes (every key optional), serving the configured routes.

        Keys: ``host`` (127.0.0.1), ``port`` (8080; 0 picks a free one), ``concurrency`` (100), ``backlog``
        (1000), ``max_body_size`` (1048576 bytes), ``shutdown_timeout`` (10 seconds), ``metrics`` (false;
        true serves ``GET /metrics`` from a registry of its own, :attr:`metrics`, which the composition
        root fills with the service's collectors). ``services``, when given, replaces ``config.services``
        (see ``HttpAdapter.from_config``).

        Raises:
            ConfigError: A key is unknown (not in ``HTTP_KEYS``), has the wrong type or an impossible value;
                the message names it.
        """
        config = as_config(config)
        key = "interfaces.http"
        config.check_keys(key, HTTP_KEYS)
        try:
            return cls(
                HttpAdapter.from_config(config, services=services),
                host=config.get_str(f"{key}.host", DEFAULT_HOST),
                port=config.get_int(f"{key}.port", DEFAULT_PORT),
                concurrency=config.get_int(f"{key}.concurrency", DEFAULT_CONCURRENCY),
                backlog=config.get_int(f"{key}.backlog", DEFAULT_BACKLOG),
                max_body_size=config.get_int(f"{key}.max_body_size", DEFAULT_MAX_BODY_SIZE),
                shutdown_timeout=config.get_float(f"{key}.shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT),
                metrics=CollectorRegistry() if config.get_bool(f"{key}.metrics", False) else None,
            )
        except ConfigError:
            raise  # it names the key already
        except ValueError as exc:  # a value of the right type, out of range
            raise ConfigError(
                f"Config section {key!r} in {config.source}: {exc}; fix the value",
                key=key,
                source=config.source,
            ) from exc

    def make_app(self) -> web.Application:
        """Builds the aiohttp application, once per start; override it to add aiohttp middleware or signals.

        Raises:
            MinosRedefinedEnrouteDecoratorException: Two routers serve the same path and method.
        """
        tracing = current()
        middlewares = [_json_errors] if tracing is None else [server_spans(tracing), _json_errors]
        app = web.Application(middlewares=middlewares, client_max_size=self.max_body_size)
        limiter = _Limiter(self.concurrency, self.backlog)
        self.check_routes()
        for decorator, action in self.adapter.routes.items():
            app.router.add_route(
                decorator.method, decorator.url, _endpoint(action, limiter, self.max_body_size)
            )
        if self.metrics is not None:
            app.router.add_get(METRICS_PATH, _metrics_endpoint(self.metrics), allow_head=False)
        return app

    def check_routes(self) -> None:
        """Build the routes now and check none clashes with what the connector serves itself.

        Raises:
            MinosRedefinedEnrouteDecoratorException: Two routers serve the same path and method, or a
                handler serves ``GET /metrics`` while ``metrics`` is on.
        """
        routes = self.adapter.routes
        if self.metrics is not None and any(
            decorator.url == METRICS_PATH and decorator.method == "GET" for decorator in routes
        ):
            raise MinosRedefinedEnrouteDecoratorException(
                f"GET {METRICS_PATH} is served by a handler and by interfaces.http.metrics: true; move the "
                "handler or turn the metrics off"
            )

    async def start(self) -> None:
        """Listen on ``host`` and ``port`` (after a restart, on the port bound before) and serve.

        Raises:
            OSError: The address cannot be bound.
        """
        self._runner = None  # one left by a loop that died belongs to that loop: drop it
        runner = JsonErrorRunner(self.make_app(), shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._bound_port or self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._bound_port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Close the listening socket (new connections are refused) and idle connections, let in-flight
        requests finish within ``shutdown_timeout`` (then cancel them), and release the server."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _metrics_endpoint(registry: CollectorRegistry) -> _Endpoint:
    async def endpoint(raw: web.Request) -> web.StreamResponse:
        # The collectors read plain counters: quick enough to run in the loop, no thread needed.
        return web.Response(body=generate_latest(registry), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})

    return endpoint


class _Limiter:
    """At most ``concurrency`` holders at once, ``backlog`` more waiting; beyond that, 503 at once."""

    def __init__(self, concurrency: int, backlog: int) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._admitted = 0
        self._most = concurrency + backlog
        self._concurrency = concurrency
        self._backlog = backlog

    async def __aenter__(self) -> None:
        if self._admitted >= self._most:
            raise _Busy(
                f"the server is handling {self._concurrency} requests with {self._backlog} more waiting, its "
                "limit; retry later",
                status=503,
            )
        self._admitted += 1
        try:
            await self._semaphore.acquire()
        except BaseException:
            self._admitted -= 1
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._semaphore.release()
        self._admitted -= 1


class _Busy(HttpResponseException):
    """The server is at its concurrency and backlog limit."""


def _endpoint(action: Action, limiter: _Limiter, max_body_size: int) -> _Endpoint:
    async def endpoint(raw: web.Request) -> web.StreamResponse:
        length = raw.content_length
        if length is not None and length > max_body_size:
            raise HttpResponseException(
                f"the body is {length} bytes, over the limit of {max_body_size}; send less", status=413
            )
        async with limiter:
            request = HttpRequest(raw)
            token = REQUEST_USER_CONTEXT_VAR.set(request.user)
            try:
                response = await action(request)
            finally:
                REQUEST_USER_CONTEXT_VAR.reset(token)
            return await _web_response(response, action)

    return endpoint


async def _web_response(response: Response | None, action: Action) -> web.Response:
    if response is None:  # 200 with an empty body, as minos 0.7 answered
        return web.Response(status=200)
    if not isinstance(response, Response):
        raise TypeError(
            f"handler {getattr(action, '__qualname__', action)!r} returned {type(response).__name__}; return "
            "a Response, an HttpResponse or None"
        )
    data = await response.content()
    if data is None:
        return web.Response(status=response.status)
    if isinstance(response, HttpResponse):
        content_type: str | None = response.content_type
    else:
        content_type = None if isinstance(data, bytes | bytearray | memoryview) else JSON_CONTENT_TYPE
    body, content_type = encode_content(data, content_type)
    return web.Response(body=body, status=response.status, headers={hdrs.CONTENT_TYPE: content_type})


@web.middleware
async def _json_errors(request: web.Request, handler: _Endpoint) -> web.StreamResponse:
    try:
        return await handler(request)
    except ResponseException as exc:
        headers = {"Retry-After": "1"} if isinstance(exc, _Busy) else None
        return error_response(exc.status, str(exc), headers)
    except (RequestException, NotSatisfiedCheckerException) as exc:
        return error_response(400, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect, or another non-error answer: aiohttp sends it as it is
        return error_response(exc.status, _http_error_message(request, exc), exc.headers)
    except Exception as exc:
        logger.exception("the handler of %s %s failed", request.method, request.path)
        return error_response(500, f"Internal error: {type(exc).__name__}")


def _http_error_message(request: web.Request, exc: web.HTTPException) -> str:
    if request.match_info.http_exception is None:
        return exc.text or exc.reason  # raised by a handler: its own words
    if isinstance(exc, web.HTTPNotFound):
        return f"no route for {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return f"{request.method} is not allowed on {request.path}; allowed: {', '.join(sorted(exc.allowed_methods))}"
    return exc.text or exc.reason
