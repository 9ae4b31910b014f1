"""HttpPort: a service's HTTP side, an actor owning the HTTP server in its loop, under a supervisor."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any, Self

from yarl import URL

from minos.common import ConfigSource, as_config

from ..actors import ActorContext, ActorService, ChildSpec, LoopActor, RestartPolicy, StartStop
from ..actors.health import HealthRegistry
from .connector import AioHttpConnector, HttpConnector

__all__ = ["HttpPort", "HttpServerActor"]

logger = logging.getLogger(__name__)

_START_TIMEOUT = 10.0  # seconds to set the server up and bind its socket
_MARGIN = 2.0  # seconds granted beyond the connector's own bound, for the actor's bookkeeping


class HttpServerActor(LoopActor):
    """Runs an HTTP connector in the actor's loop: it starts serving in ``on_loop_start`` and stops
    gracefully in ``on_loop_stop``; handlers run in this loop.

    Args:
        context: Name, parent and dead letters (see ``Actor``).
        connector: The server; the same object is started again by a restarted actor.
    """

    def __init__(self, context: ActorContext | None = None, *, connector: HttpConnector[Any, Any]) -> None:
        super().__init__(context, start_timeout=_START_TIMEOUT, stop_timeout=_stop_bound(connector))
        self.connector = connector

    async def on_loop_start(self) -> None:
        await self.connector.start()

    async def on_loop_stop(self) -> None:
        await self.connector.stop()


class HttpPort(StartStop):
    """The HTTP side of a service: one :class:`HttpServerActor` under a supervisor of its own.

    ``await start()`` returns once the server accepts connections; ``await stop()`` refuses new
    connections at once and lets requests in flight finish within the connector's ``shutdown_timeout``.
    Neither blocks the caller's event loop. Handlers run in the actor's loop, not the caller's.

    Example::

        http_port = HttpPort.from_config(Config("config.yml"))
        await http_port.start()
        print(http_port.url)   # http://127.0.0.1:8080
        ...
        await http_port.stop()

    Args:
        connector: The server to run.
        name: Names the actor and its threads (``minos-<name>-server``, ``minos-<name>-server-loop``).
        policy: The supervisor's restart intensity.
        health: Where the port registers while started; None registers it nowhere.
    """

    def __init__(
        self,
        connector: HttpConnector[Any, Any],
        *,
        name: str = "http-port",
        policy: RestartPolicy | None = None,
        health: HealthRegistry | None = None,
    ) -> None:
        self.connector = connector
        self._health = health
        self.name = name
        bound = _stop_bound(connector)
        # The loop gets `bound` for the connector, then cancel_timeout (1 s) for leftover tasks, then a join.
        self._spec = ChildSpec(
            f"{name}-server",
            partial(HttpServerActor.start, connector=connector),
            stop_timeout=bound + _MARGIN,
            start_timeout=2 * _START_TIMEOUT + 1,
        )
        self.service = ActorService(name, [self._spec], policy=policy)

    @classmethod
    def from_config(
        cls,
        config: ConfigSource,
        *,
        health: HealthRegistry | None = None,
        services: Iterable[object] | None = None,
    ) -> Self:
        """The port ``config`` describes: an :class:`AioHttpConnector` from ``interfaces.http`` serving
        the REST routes of the configured ``services`` (see ``AioHttpConnector.from_config``).

        Args:
            config: The service's configuration.
            health: Where the port registers while started; None registers it nowhere.
            services: The services to route to instead of ``config.services``: classes, import paths or
                instances (the composition root passes its ``SystemService``, built with its registry).

        Raises:
            ConfigError: ``interfaces.http`` holds a wrong value; the message names it.
            ImportError: A configured router's import path cannot be imported.
        """
        config = as_config(config)
        return cls(
            AioHttpConnector.from_config(config, services=services),
            name=f"{config.name}-http-port",
            health=health,
        )

    @property
    def running(self) -> bool:
        """Whether the port was started and not stopped."""
        return self.service.running

    @property
    def port(self) -> int | None:
        """The TCP port listened on, once started (with ``port: 0``, the one picked)."""
        return self.connector.bound_port

    @property
    def url(self) -> URL:
        """The server's base URL, e.g. ``http://127.0.0.1:8080``.

        Raises:
            RuntimeError: The port is 0 and the server was never started.
        """
        return self.connector.url

    async def start(self) -> None:
        """Start the server; returns once it accepts connections (idempotent).

        Raises:
            OSError: The server could not listen, e.g. on an address already in use.
        """
        await self.service.start()
        if self._health is not None:
            self._health.register_unique(self, self.name)

    def health(self) -> tuple[bool, str]:
        """Healthy while the server runs (for ``/system/health``)."""
        if not self.service.running:
            return False, "stopped"
        return True, f"serving on port {self.port}"

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the server gracefully (idempotent).

        New connections are refused at once; requests in flight get ``shutdown_timeout`` seconds to
        finish, then are cancelled.

        Args:
            timeout: Seconds for the whole stop; by default what the connector's ``shutdown_timeout``
                needs, plus a margin.
        """
        if self._health is not None:
            self._health.unregister(self)
        await self.service.stop(self._spec.stop_timeout + _MARGIN if timeout is None else timeout)

    def __repr__(self) -> str:
        return f"<HttpPort {self.name!r} {self.connector!r} {'running' if self.running else 'stopped'}>"


def _stop_bound(connector: HttpConnector[Any, Any]) -> float:
    # aiohttp waits shutdown_timeout for requests in flight, then as long again for the cancelled ones.
    return 2 * connector.shutdown_timeout + _MARGIN
