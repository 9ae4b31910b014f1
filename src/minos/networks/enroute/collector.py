"""Route collection: the handlers of services, built once into async callables with hooks and middleware."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import update_wrapper
from typing import Any

from minos.common import Config

from ..exceptions import (
    MinosEnrouteDecoratorException,
    MinosMultipleEnrouteDecoratorKindsException,
    MinosRedefinedEnrouteDecoratorException,
)
from ..protocol.messages import EnrouteDecoratorKind
from ..protocol.requests import Request, Response
from .decorators import (
    BrokerCommandEnrouteDecorator,
    BrokerEnrouteDecorator,
    BrokerEventEnrouteDecorator,
    BrokerQueryEnrouteDecorator,
    EnrouteDecorator,
    PeriodicEventEnrouteDecorator,
    RestEnrouteDecorator,
)
from .handlers import Action, HandlerMeta

__all__ = ["EnrouteCollector", "EnrouteFactory", "Middleware", "import_object"]

logger = logging.getLogger(__name__)

Middleware = Callable[[Request, Action], Awaitable[Response | None]]
"""``async def mw(request, inner)`` runs around the handler; ``await inner(request)`` calls the next layer."""

_DecoratorTypes = tuple[type[EnrouteDecorator], ...]


def import_object(path: str) -> Any:
    """Imports the object an import path names: ``"pkg.mod.attr"`` or ``"pkg.mod:attr"``.

    Raises:
        ImportError: No module or attribute matches the path; the message names the path.
    """
    if ":" in path:
        module_name, _, attribute = path.partition(":")
        candidates = [(module_name, attribute)]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]
    for module_name, attribute in candidates:
        if not module_name or not attribute:
            break
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # that prefix is not a module: try a shorter one
            raise ImportError(
                f"cannot import {path!r}: importing module {module_name!r} failed: {exc}"
            ) from exc
        except Exception as exc:
            raise ImportError(
                f"cannot import {path!r}: importing module {module_name!r} failed: {exc!r}"
            ) from exc
        found: Any = module
        for name in attribute.split("."):
            try:
                found = getattr(found, name)
            except AttributeError as exc:
                raise ImportError(
                    f"cannot import {path!r}: module {module_name!r} has no attribute {attribute!r}"
                ) from exc
        return found
    raise ImportError(
        f"cannot import {path!r}: no module of it can be imported; write it as 'package.module.Name' or "
        "'package.module:Name' and check the package is installed"
    )


class EnrouteCollector:
    """Finds the decorated handlers of one service, by method name.

    A service class may define ``__get_enroute__(config)`` (a classmethod) returning the mapping of method
    name to decorators itself; otherwise the class is scanned, bases first, in definition order.

    Args:
        decorated: The service: a class, an instance, or the import path of either.
        config: Passed to ``__get_enroute__``.
    """

    def __init__(self, decorated: object, config: Config | None = None) -> None:
        if isinstance(decorated, str):
            decorated = import_object(decorated)
        self.decorated = decorated
        self.config = config

    @property
    def service_class(self) -> type:
        """The class of the service."""
        return self.decorated if isinstance(self.decorated, type) else type(self.decorated)

    def get_all(self) -> dict[str, set[EnrouteDecorator]]:
        """Returns every handler's decorators, by method name.

        Raises:
            MinosEnrouteDecoratorException: ``__get_enroute__`` names a method the service lacks.
            MinosMultipleEnrouteDecoratorKindsException: ``__get_enroute__`` gives one method two kinds.
        """
        get_enroute = getattr(self.decorated, "__get_enroute__", None)
        if get_enroute is None:
            return self._scan()
        mapping = get_enroute(config=self.config)
        result: dict[str, set[EnrouteDecorator]] = {}
        for name, decorators in mapping.items():
            if not hasattr(self.decorated, name):
                raise MinosEnrouteDecoratorException(
                    f"{self.service_class.__qualname__}.__get_enroute__ names {name!r}, which the service "
                    "does not have; return only the names of its handler methods"
                )
            kinds = {decorator.KIND for decorator in decorators}
            if len(kinds) > 1:
                raise MinosMultipleEnrouteDecoratorKindsException(
                    f"{self.service_class.__qualname__}.__get_enroute__ gives {name!r} several kinds "
                    f"({sorted(kind.name for kind in kinds)}): a handler has one kind"
                )
            result[name] = set(decorators)
        return result

    def get_broker_command_query_event(self) -> dict[str, set[EnrouteDecorator]]:
        """Returns the handlers' broker decorators, by method name."""
        return self.select((BrokerEnrouteDecorator,))

    def get_broker_command_query(self) -> dict[str, set[EnrouteDecorator]]:
        """Returns the handlers' broker command and query decorators, by method name."""
        return self.select((BrokerCommandEnrouteDecorator, BrokerQueryEnrouteDecorator))

    def get_broker_event(self) -> dict[str, set[EnrouteDecorator]]:
        """Returns the handlers' broker event decorators, by method name."""
        return self.select((BrokerEventEnrouteDecorator,))

    def get_rest_command_query(self) -> dict[str, set[EnrouteDecorator]]:
        """Returns the handlers' REST decorators, by method name."""
        return self.select((RestEnrouteDecorator,))

    def get_periodic_event(self) -> dict[str, set[EnrouteDecorator]]:
        """Returns the handlers' periodic decorators, by method name."""
        return self.select((PeriodicEventEnrouteDecorator,))

    def select(self, types: _DecoratorTypes) -> dict[str, set[EnrouteDecorator]]:
        """Returns the handlers' decorators that are instances of ``types``, by method name."""
        selected = {
            name: {decorator for decorator in decorators if isinstance(decorator, types)}
            for name, decorators in self.get_all().items()
        }
        return {name: decorators for name, decorators in selected.items() if decorators}

    def _scan(self) -> dict[str, set[EnrouteDecorator]]:
        members: dict[str, object] = {}
        for klass in reversed(self.service_class.__mro__):
            members.update(vars(klass))  # an override keeps the position of what it overrides
        result: dict[str, set[EnrouteDecorator]] = {}
        for name, member in members.items():
            meta = _handler_meta(member)
            if meta is not None and meta.decorators:
                result[name] = set(meta.decorators)
        return result


@dataclass
class _Route:
    decorator: EnrouteDecorator
    handlers: list[tuple[tuple[int, str], str, Action]] = field(default_factory=list)


class EnrouteFactory:
    """Builds the routes of services: each decorator mapped to an async callable taking the request.

    Each call instantiates each service class once, and only when it has a route of the kinds asked for.
    A class whose ``__init__`` has a required positional parameter is built as ``cls(config)``, any other
    as ``cls()``; an instance is used as it is. Per handler, the callable runs the middleware (the first
    listed outermost), then the service's ``_pre_{kind}_handle`` hook, the checkers, the handler and the
    ``_post_{kind}_handle`` hook; all of it is composed here, once, not per request.

    Args:
        services: Service classes, instances, or their import paths.
        middleware: ``async def mw(request, inner)`` callables or their import paths, outermost first.
        config: Given to services that take it and to ``__get_enroute__``.

    Raises:
        ImportError: An import path cannot be imported.
        TypeError: A middleware is not callable.
    """

    def __init__(
        self,
        *services: object,
        middleware: Iterable[Middleware | str] | Middleware | str | None = None,
        config: Config | None = None,
    ) -> None:
        if middleware is None:
            middleware = ()
        elif isinstance(middleware, str) or callable(middleware):
            middleware = (middleware,)
        self.services: tuple[object, ...] = tuple(
            import_object(service) if isinstance(service, str) else service for service in services
        )
        self.middleware: tuple[Middleware, ...] = tuple(_resolve_middleware(item) for item in middleware)
        self.config = config

    @property
    def classes(self) -> tuple[object, ...]:
        """The services, as minos 0.7 named them; the same as ``services``."""
        return self.services

    def get_all(self) -> dict[EnrouteDecorator, Action]:
        """Returns every route of the services."""
        return self.build((EnrouteDecorator,))

    def get_broker_command_query_event(self) -> dict[EnrouteDecorator, Action]:
        """Returns the broker routes."""
        return self.build((BrokerEnrouteDecorator,))

    def get_broker_command_query(self) -> dict[EnrouteDecorator, Action]:
        """Returns the broker command and query routes."""
        return self.build((BrokerCommandEnrouteDecorator, BrokerQueryEnrouteDecorator))

    def get_broker_event(self) -> dict[EnrouteDecorator, Action]:
        """Returns the broker event routes."""
        return self.build((BrokerEventEnrouteDecorator,))

    def get_rest_command_query(self) -> dict[EnrouteDecorator, Action]:
        """Returns the REST routes."""
        return self.build((RestEnrouteDecorator,))

    def get_periodic_event(self) -> dict[EnrouteDecorator, Action]:
        """Returns the periodic routes."""
        return self.build((PeriodicEventEnrouteDecorator,))

    def build(self, types: _DecoratorTypes) -> dict[EnrouteDecorator, Action]:
        """Returns the routes whose decorators are instances of ``types``.

        Event handlers sharing a route (topic, path and method, or schedule) are combined into one callable
        that runs them all in declaration order; when some raise, the others still run and then the first
        error is raised.

        Raises:
            MinosRedefinedEnrouteDecoratorException: Two handlers claim one route and are not both events;
                the message names both.
            TypeError: A service class cannot be built (see the class docstring).
        """
        routes: dict[tuple[Any, ...], _Route] = {}
        for index, service in enumerate(self.services):
            collector = EnrouteCollector(service, self.config)
            selected = collector.select(types)
            if not selected:
                continue
            cls = collector.service_class
            instance = _instantiate(service, self.config)
            for name, decorators in selected.items():
                handler_name = f"{cls.__module__}.{cls.__qualname__}.{name}"
                kind = next(iter(decorators)).KIND
                action = self._build_action(cls, instance, name, kind, handler_name)
                for decorator in sorted(decorators, key=repr):
                    _add(routes, decorator, (index, name), handler_name, action)
        return {route.decorator: _combine(route) for route in routes.values()}

    def _build_action(
        self, cls: type, instance: object, name: str, kind: EnrouteDecoratorKind, handler_name: str
    ) -> Action:
        handler = getattr(instance, name)
        meta = _handler_meta(handler)
        checkers = [] if meta is None else meta.checkers
        runs = [
            checker.bind(_checker_call(cls, instance, checker.func), handler_name) for checker in checkers
        ]
        pre = getattr(instance, kind.pre_fn_name, None)
        post = getattr(instance, kind.post_fn_name, None)
        action = _compose(handler, pre, post, runs)
        for middleware in reversed(self.middleware):
            action = _layer(middleware, action)
        return action


def _handler_meta(member: object) -> HandlerMeta | None:
    inner = member.__func__ if isinstance(member, staticmethod | classmethod) else member
    meta = getattr(inner, "meta", None)
    return meta if isinstance(meta, HandlerMeta) else None


def _add(
    routes: dict[tuple[Any, ...], _Route],
    decorator: EnrouteDecorator,
    identity: tuple[int, str],
    handler_name: str,
    action: Action,
) -> None:
    route = routes.setdefault(decorator.route_key, _Route(decorator))
    if any(known == identity for known, _, _ in route.handlers):
        return  # the same handler reached twice through equivalent decorators: one route, run once
    if route.handlers and not (
        route.decorator.KIND is EnrouteDecoratorKind.Event and decorator.KIND is EnrouteDecoratorKind.Event
    ):
        other = route.handlers[0][1]
        raise MinosRedefinedEnrouteDecoratorException(
            f"{decorator!r} on handler {handler_name!r} redefines {route.decorator!r} on handler {other!r}: "
            "a command or query route has exactly one handler, so rename one route or remove one handler"
        )
    route.handlers.append((identity, handler_name, action))


def _combine(route: _Route) -> Action:
    if len(route.handlers) == 1:
        return route.handlers[0][2]
    handlers = [(name, action) for _, name, action in route.handlers]

    async def run_all(request: Request) -> Response | None:
        first: Exception | None = None
        for name, action in handlers:
            try:
                await action(request)
            except Exception as exc:
                if first is None:
                    first = exc
                else:  # only the first error is raised; the others must still reach someone
                    logger.warning("event handler %r failed after another one did", name, exc_info=True)
        if first is not None:
            raise first
        return None

    run_all.__module__ = ""
    run_all.__qualname__ = run_all.__name__ = " + ".join(name for name, _ in handlers)
    return run_all


def _instantiate(service: object, config: Config | None) -> object:
    if not isinstance(service, type):
        return service
    try:
        parameters = inspect.signature(service).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume it takes nothing
        return service()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.default is p.empty and p.kind in positional]
    keyword_only = [
        p for p in parameters if p.default is p.empty and p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    if keyword_only or len(required) > 1:
        names = [p.name for p in required + keyword_only]
        raise TypeError(
            f"cannot build service {service.__qualname__}: its __init__ requires {names}, but a service is "
            "built with no argument or with the Config alone; give the others defaults or pass an instance"
        )
    if not required:
        return service()
    if config is None:
        raise TypeError(
            f"cannot build service {service.__qualname__}: its __init__ requires {required[0].name!r} (the "
            "Config) and none was given; pass config= to the router or factory, or pass an instance"
        )
    return service(config)


def _resolve_middleware(item: Middleware | str) -> Middleware:
    resolved = import_object(item) if isinstance(item, str) else item
    if not callable(resolved):
        raise TypeError(
            f"middleware {item!r} is not callable; give an `async def mw(request, inner)` function"
        )
    middleware: Middleware = resolved
    return middleware


def _checker_call(cls: type, instance: object, func: Callable[..., Any]) -> Callable[[Request], Any]:
    """A checker defined on the service is called bound to the instance; a free function with the request."""
    for klass in cls.__mro__:
        for name, member in vars(klass).items():
            inner = member.__func__ if isinstance(member, staticmethod | classmethod) else member
            if inner is func:
                bound: Callable[[Request], Any] = getattr(instance, name)
                return bound
    return func


def _as_async(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    if inspect.iscoroutinefunction(fn):
        return fn

    async def call(value: Any) -> Any:
        result = fn(value)
        if inspect.isawaitable(result):
            result = await result
        return result

    update_wrapper(call, fn, updated=())
    return call


def _compose(
    handler: Callable[..., Any],
    pre: Callable[..., Any] | None,
    post: Callable[..., Any] | None,
    checkers: list[Callable[[Request], Awaitable[None]]],
) -> Action:
    call: Action = _as_async(handler)
    if pre is None and post is None and not checkers:
        return call  # the hot path: the handler's own coroutine function, nothing in between
    pre_call = None if pre is None else _as_async(pre)
    post_call = None if post is None else _as_async(post)

    async def action(request: Request) -> Response | None:
        if pre_call is not None:
            request = await pre_call(request)
        for check in checkers:
            await check(request)
        response = await call(request)
        if post_call is not None:
            response = await post_call(response)
        return response

    update_wrapper(action, handler, updated=())
    return action


def _layer(middleware: Middleware, inner: Action) -> Action:
    if inspect.iscoroutinefunction(middleware):

        async def layer(request: Request) -> Response | None:
            return await middleware(request, inner)

    else:

        async def layer(request: Request) -> Response | None:
            result: Any = middleware(request, inner)
            if inspect.isawaitable(result):
                result = await result
            response: Response | None = result
            return response

    update_wrapper(layer, inner, updated=())
    return layer
