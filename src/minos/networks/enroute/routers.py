"""Routers: the routes of one transport (broker, HTTP, periodic), collected from the decorated services."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Self

from minos.common import Config, ConfigSource, as_config

from .collector import EnrouteFactory, Middleware
from .decorators import EnrouteDecorator
from .handlers import Action

__all__ = ["BrokerRouter", "HttpRouter", "PeriodicRouter", "RestHttpRouter", "Router"]


class Router(ABC):
    """The routes of one transport: each decorator mapped to an async ``(request) -> Response | None``.

    Routes are built on first use (or by ``build_routes``); building instantiates each service class that
    has a route here once, for the whole router.

    Args:
        services: Service classes, instances, or their import paths.
        config: Given to services whose ``__init__`` takes it and to ``__get_enroute__``.
        middleware: ``async def mw(request, inner)`` callables or their import paths, outermost first.
    """

    def __init__(
        self,
        services: Iterable[object] = (),
        *,
        config: Config | None = None,
        middleware: Iterable[Middleware | str] = (),
    ) -> None:
        self.services = tuple(services)
        self.config = config
        self.middleware = tuple(middleware)
        self._routes: dict[EnrouteDecorator, Action] | None = None

    @classmethod
    def from_config(cls, config: ConfigSource, *, services: Iterable[object] | None = None) -> Self:
        """Builds the router of the services and middleware listed in ``config``.

        Args:
            config: The service's configuration.
            services: Routed instead of ``config.services`` when given: the composition root passes them
                with the instances it built itself (a ``SystemService`` reading its health registry).

        Raises:
            ImportError: A service or middleware import path cannot be imported (raised at route building).
        """
        config = as_config(config)
        return cls(
            config.services if services is None else services, config=config, middleware=config.middleware
        )

    @property
    def routes(self) -> dict[EnrouteDecorator, Action]:
        """The routes, built on first access.

        Raises:
            MinosRedefinedEnrouteDecoratorException: Two handlers claim one command or query route.
            ImportError: A service or middleware import path cannot be imported.
            TypeError: A service class cannot be built.
        """
        if self._routes is None:
            self.build_routes()
        assert self._routes is not None
        return self._routes

    def build_routes(self) -> None:
        """Builds the routes again, with new instances of the service classes."""
        factory = EnrouteFactory(*self.services, middleware=self.middleware, config=self.config)
        self._routes = self._build_routes(factory)

    def get_routes(self) -> dict[EnrouteDecorator, Action]:
        """Returns the routes (building them on first use)."""
        return self.routes

    @abstractmethod
    def _build_routes(self, factory: EnrouteFactory) -> dict[EnrouteDecorator, Action]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(services={self.services!r})"


class BrokerRouter(Router):
    """The broker routes: commands, queries and events, keyed by their ``Broker*EnrouteDecorator``."""

    def _build_routes(self, factory: EnrouteFactory) -> dict[EnrouteDecorator, Action]:
        return factory.get_broker_command_query_event()


class HttpRouter(Router, ABC):
    """The base of routers whose routes are reached over HTTP."""


class RestHttpRouter(HttpRouter):
    """The REST routes, keyed by their ``Rest*EnrouteDecorator`` (path and method)."""

    def _build_routes(self, factory: EnrouteFactory) -> dict[EnrouteDecorator, Action]:
        return factory.get_rest_command_query()


class PeriodicRouter(Router):
    """The periodic routes, keyed by their ``PeriodicEventEnrouteDecorator`` (schedule)."""

    def _build_routes(self, factory: EnrouteFactory) -> dict[EnrouteDecorator, Action]:
        return factory.get_periodic_event()
