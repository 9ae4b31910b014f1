"""The ``@enroute`` decorators: hashable route values that attach themselves to a handler as metadata."""

from __future__ import annotations

import warnings
from abc import ABC
from collections.abc import Hashable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from croniter import croniter

from ..protocol.messages import EnrouteDecoratorKind
from .cron import CronTab
from .handlers import HandlerMeta

__all__ = [
    "BrokerCommandEnrouteDecorator",
    "BrokerEnroute",
    "BrokerEnrouteDecorator",
    "BrokerEventEnrouteDecorator",
    "BrokerQueryEnrouteDecorator",
    "Enroute",
    "EnrouteDecorator",
    "HttpEnrouteDecorator",
    "PeriodicEnroute",
    "PeriodicEnrouteDecorator",
    "PeriodicEventEnrouteDecorator",
    "RestCommandEnrouteDecorator",
    "RestEnroute",
    "RestEnrouteDecorator",
    "RestQueryEnrouteDecorator",
    "enroute",
]

_T = TypeVar("_T")


class EnrouteDecorator(ABC):
    """Where a handler is reachable (a topic, an HTTP route, a schedule) and as what kind of handler.

    Applying a decorator records it on the function's ``HandlerMeta`` and returns the function itself,
    still directly callable with its name, docstring and signature; routers collect the routes later.
    Decorators are values: two of the same class (so of the same kind) with the same routing fields are
    equal whatever their extra keyword arguments, and hash as the tuple of their fields (as in minos 0.7),
    so they serve as route keys.

    Args:
        kwargs: Extra keyword arguments, kept as ``kwargs`` for specs and discovery.
    """

    KIND: ClassVar[EnrouteDecoratorKind]

    __slots__ = ("_fields", "_hash", "_kwargs")

    def __init__(self, *fields: Hashable, **kwargs: Any) -> None:
        if type(self) is EnrouteDecorator:
            raise TypeError(
                "EnrouteDecorator is abstract; use one of its kinds, e.g. enroute.broker.command(...)"
            )
        self._fields = fields
        self._kwargs: Mapping[str, Any] = MappingProxyType(dict(kwargs))
        self._hash = hash(fields)

    def __call__(self, func: _T) -> _T:
        """Records this decorator on ``func`` and returns ``func`` unchanged.

        ``func`` may be a function (sync or async), a ``staticmethod`` or a ``classmethod``.

        Raises:
            MinosMultipleEnrouteDecoratorKindsException: ``func`` already carries a decorator of another kind.
            TypeError: ``func`` is not something a handler can be made of, or this decorator has no kind
                (a base class such as ``HttpEnrouteDecorator`` built directly).
        """
        if not hasattr(self, "KIND"):
            raise TypeError(
                f"{self!r} has no kind, so it cannot route a handler; use one of its kinds, e.g. "
                "enroute.rest.command(...) or enroute.broker.event(...)"
            )
        HandlerMeta.of(func).add_decorator(self)
        return func

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """The extra keyword arguments the decorator was given (read-only)."""
        return self._kwargs

    @property
    def route_key(self) -> tuple[Hashable, ...]:
        """What identifies the route whatever the kind: two decorators sharing it conflict unless both are
        events, which are then all run."""
        return (EnrouteDecorator, self._fields)

    @property
    def pre_fn_name(self) -> str:
        """The name of the service method run before handlers of this kind, e.g. ``_pre_command_handle``."""
        return self.KIND.pre_fn_name

    @property
    def post_fn_name(self) -> str:
        """The name of the service method run after handlers of this kind, e.g. ``_post_command_handle``."""
        return self.KIND.post_fn_name

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._fields)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(self) is not type(other):
            return False
        assert isinstance(other, EnrouteDecorator)
        return self._hash == other._hash and self._fields == other._fields

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        args = [repr(field) for field in self._fields]
        args += [f"{key}={value!r}" for key, value in self._kwargs.items()]
        return f"{type(self).__name__}({', '.join(args)})"


class BrokerEnrouteDecorator(EnrouteDecorator, ABC):
    """A handler reachable through the broker, on a topic.

    Args:
        topic: The topic the handler answers, e.g. ``"user.create"``.
        kwargs: Extra keyword arguments, kept for specs and discovery.

    Raises:
        TypeError: ``topic`` is not a string.
        ValueError: ``topic`` is empty.
    """

    __slots__ = ()

    def __init__(self, topic: str, **kwargs: Any) -> None:
        _check_text("topic", topic, "'user.create'")
        super().__init__(topic, **kwargs)

    @property
    def topic(self) -> str:
        """The topic the handler answers."""
        topic: str = self._fields[0]  # type: ignore[assignment]
        return topic

    @property
    def route_key(self) -> tuple[Hashable, ...]:
        return (BrokerEnrouteDecorator, self.topic)


class BrokerCommandEnrouteDecorator(BrokerEnrouteDecorator):
    """A broker command: one handler per topic, which changes state and may reply."""

    __slots__ = ()
    KIND: ClassVar[EnrouteDecoratorKind] = EnrouteDecoratorKind.Command


class BrokerQueryEnrouteDecorator(BrokerEnrouteDecorator):
    """A broker query: one handler per topic, which reads state and replies."""

    __slots__ = ()
    KIND: ClassVar[EnrouteDecoratorKind] = EnrouteDecoratorKind.Query


class BrokerEventEnrouteDecorator(BrokerEnrouteDecorator):
    """A broker event: every handler of the topic runs."""

    __slots__ = ()
    KIND: ClassVar[EnrouteDecoratorKind] = EnrouteDecoratorKind.Event


class HttpEnrouteDecorator(EnrouteDecorator, ABC):
    """A handler reachable over HTTP, at a path and method.

    Args:
        path: The path, e.g. ``"/users/{user_id}"``.
        method: The HTTP method, e.g. ``"GET"``; kept upper-cased.
        url: The deprecated name of ``path`` (minos 0.7 accepted both); warns with a ``DeprecationWarning``.
        kwargs: Extra keyword arguments, kept for specs and discovery.

    Raises:
        ValueError: ``path`` (or ``url``) or ``method`` is missing or empty.
        TypeError: ``path`` or ``method`` is not a string.
    """

    __slots__ = ()

    def __init__(
        self, path: str | None = None, method: str | None = None, url: str | None = None, **kwargs: Any
    ) -> None:
        if path is None and url is not None:
            warnings.warn(
                f"enroute's 'url' argument is deprecated; write path={url!r} instead",
                DeprecationWarning,
                stacklevel=2,
            )
            path = url
        if path is None:
            raise ValueError(
                "an HTTP route needs a path, e.g. enroute.rest.query(path='/users', method='GET')"
            )
        if method is None:
            raise ValueError(
                f"the HTTP route {path!r} needs a method, e.g. enroute.rest.query(path={path!r}, method='GET')"
            )
        _check_text("path", path, "'/users/{user_id}'")
        _check_text("method", method, "'GET'")
        super().__init__(path, method.upper(), **kwargs)

    @property
    def path(self) -> str:
        """The path, e.g. ``"/users/{user_id}"``."""
        path: str = self._fields[0]  # type: ignore[assignment]
        return path

    @property
    def url(self) -> str:
        """The path; the same as ``path`` (minos 0.7's older name)."""
        return self.path

    @property
    def method(self) -> str:
        """The upper-cased HTTP method."""
        method: str = self._fields[1]  # type: ignore[assignment]
        return method

    @property
    def route_key(self) -> tuple[Hashable, ...]:
        return (HttpEnrouteDecorator, self.path, self.method)


class RestEnrouteDecorator(HttpEnrouteDecorator, ABC):
    """A REST handler: a path and method answered with a JSON body."""

    __slots__ = ()


class RestCommandEnrouteDecorator(RestEnrouteDecorator):
    """A REST command, usually ``POST``, ``PUT``, ``PATCH`` or ``DELETE``."""

    __slots__ = ()
    KIND: ClassVar[EnrouteDecoratorKind] = EnrouteDecoratorKind.Command


class RestQueryEnrouteDecorator(RestEnrouteDecorator):
    """A REST query, usually ``GET``."""

    __slots__ = ()
    KIND: ClassVar[EnrouteDecoratorKind] = EnrouteDecoratorKind.Query


class PeriodicEnrouteDecorator(EnrouteDecorator, ABC):
    """A handler run on a cron schedule; the pattern is checked when the decorator is built.

    Args:
        crontab: A cron pattern (5 fields, or 6 with the seconds first; ``@reboot``, ``@hourly`` ...),
            a ``CronTab`` or a ``croniter``.
        kwargs: Extra keyword arguments, kept for specs and discovery.

    Raises:
        ValueError: The pattern is not valid cron; the message quotes it.
    """

    __slots__ = ()

    def __init__(self, crontab: str | CronTab | croniter, **kwargs: Any) -> None:
        if not isinstance(crontab, CronTab):
            crontab = CronTab(crontab)
        super().__init__(crontab, **kwargs)

    @property
    def crontab(self) -> CronTab:
        """The schedule."""
        crontab: CronTab = self._fields[0]  # type: ignore[assignment]
        return crontab

    @property
    def route_key(self) -> tuple[Hashable, ...]:
        return (PeriodicEnrouteDecorator, self.crontab)

    def __repr__(self) -> str:
        args = [repr(self.crontab.pattern)] + [f"{key}={value!r}" for key, value in self._kwargs.items()]
        return f"{type(self).__name__}({', '.join(args)})"


class PeriodicEventEnrouteDecorator(PeriodicEnrouteDecorator):
    """A periodic event: every handler of the schedule runs when it fires."""

    __slots__ = ()
    KIND: ClassVar[EnrouteDecoratorKind] = EnrouteDecoratorKind.Event


class BrokerEnroute:
    """The broker decorators: ``enroute.broker.command``, ``.query`` and ``.event``."""

    command: ClassVar[type[BrokerCommandEnrouteDecorator]] = BrokerCommandEnrouteDecorator
    query: ClassVar[type[BrokerQueryEnrouteDecorator]] = BrokerQueryEnrouteDecorator
    event: ClassVar[type[BrokerEventEnrouteDecorator]] = BrokerEventEnrouteDecorator


class RestEnroute:
    """The REST decorators: ``enroute.rest.command`` and ``.query``."""

    command: ClassVar[type[RestCommandEnrouteDecorator]] = RestCommandEnrouteDecorator
    query: ClassVar[type[RestQueryEnrouteDecorator]] = RestQueryEnrouteDecorator


class PeriodicEnroute:
    """The periodic decorators: ``enroute.periodic.event``."""

    event: ClassVar[type[PeriodicEventEnrouteDecorator]] = PeriodicEventEnrouteDecorator


class Enroute:
    """Every ``@enroute`` decorator, by transport: ``.broker``, ``.rest`` and ``.periodic``."""

    broker: ClassVar[type[BrokerEnroute]] = BrokerEnroute
    rest: ClassVar[type[RestEnroute]] = RestEnroute
    periodic: ClassVar[type[PeriodicEnroute]] = PeriodicEnroute


enroute = Enroute()
"""The decorators: ``@enroute.broker.command("user.create")``, ``@enroute.rest.query("/users", "GET")`` ..."""


def _check_text(name: str, value: object, example: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"an enroute {name} must be a str such as {example}, got {value!r}")
    if not value:
        raise ValueError(f"an enroute {name} must not be empty; give one such as {example}")
