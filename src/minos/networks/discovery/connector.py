"""DiscoveryConnector: registers the service with discovery on start, in the background while it is down."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, Self

from minos.common import Config, ConfigSource, KnownKeys, as_config

from ..actors import StartStop
from ..actors.clock import Sleep
from ..actors.health import ComponentHealth, HealthRegistry
from ..enroute import EnrouteCollector, RestEnrouteDecorator, import_object
from ..exceptions import MinosDiscoveryConnectorException, MinosInvalidDiscoveryClient
from ..transports.network import get_host_ip
from .clients import (
    Backoff,
    DiscoveryClient,
    DiscoveryUnavailableError,
    InMemoryDiscoveryClient,
    MinosDiscoveryClient,
)

__all__ = [
    "DISCOVERY_KEYS",
    "DiscoveryConnector",
    "DiscoveryState",
    "discovery_keys",
    "endpoints_from_config",
]

logger = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8080
HEALTH_NAME = "discovery"
"""The name the connector has in the health report (its ``name`` is the service's)."""
CLIENTS: Mapping[str, type[DiscoveryClient]] = {
    "memory": InMemoryDiscoveryClient,
    "minos": MinosDiscoveryClient,
}
"""The clients ``discovery.client`` may name by a short name; any other value is an import path."""
DISCOVERY_KEYS: KnownKeys = dict.fromkeys(
    ("client", "address", "startup_timeout", "retry_for", "stop_timeout")
)
"""The keys of ``discovery`` :meth:`DiscoveryConnector.from_config` reads; the client's own
(``DiscoveryClient.config_keys``) are known too, and any other key is an error."""

_RETRYABLE = (DiscoveryUnavailableError, OSError)  # OSError: ConnectionError and TimeoutError too


class DiscoveryState(enum.Enum):
    """Where the connector's registration stands."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    RETRYING = "retrying"
    REGISTERED = "registered"
    FAILED = "failed"


class DiscoveryConnector(StartStop):
    """Registers the service's REST endpoints with discovery when it starts, and removes them when it stops.

    ``subscribe()`` returns as soon as discovery has the registration, or after ``startup_timeout`` at
    most: while discovery cannot be reached, the connector keeps trying in the background (with ``backoff``
    between attempts, for ``retry_for`` seconds at most), and :attr:`state` tells where it stands. While
    subscribed, the connector is in the health registry as ``"discovery"``: healthy once registered.

    Args:
        client: Talks to the discovery service.
        name: The service's name.
        endpoints: ``{"url", "method", **decorator kwargs}`` of each REST route (see
            :func:`endpoints_from_config`).
        host: The address other services reach this one at.
        port: This service's HTTP port; 8080 if None (as in minos 0.7).
        startup_timeout: Seconds ``subscribe()`` waits for the registration at most.
        retry_for: Seconds of failed attempts after which the connector gives up (state ``failed``); None
            tries for as long as it runs.
        backoff: The waits between attempts.
        stop_timeout: Seconds ``unsubscribe()`` waits for the discovery service at most.
        health: Where to register while subscribed; None registers it nowhere.
        sleep: What the waits sleep with.
        clock: Monotonic seconds, to measure ``retry_for``.
    """

    def __init__(
        self,
        client: DiscoveryClient,
        name: str,
        endpoints: Sequence[Mapping[str, Any]],
        host: str,
        port: int | None = None,
        *,
        startup_timeout: float = 5.0,
        retry_for: float | None = 600.0,
        backoff: Backoff | None = None,
        stop_timeout: float = 5.0,
        health: HealthRegistry | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(client, DiscoveryClient):
            raise MinosInvalidDiscoveryClient(f"a discovery client must be a DiscoveryClient, got {client!r}")
        self.client = client
        self.name = name
        self.endpoints = [dict(endpoint) for endpoint in endpoints]
        self.host = host
        self.port = DEFAULT_HTTP_PORT if port is None else port
        self.startup_timeout = startup_timeout
        self.retry_for = retry_for
        self.backoff = Backoff(first=0.5, maximum=30.0) if backoff is None else backoff
        self.stop_timeout = stop_timeout
        self._health = health
        self._sleep = sleep
        self._clock = clock
        self._state = DiscoveryState.UNREGISTERED
        self._registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = False
        self._ever_subscribed = False
        self.attempts = 0
        self.last_error: BaseException | None = None

    @classmethod
    def from_config(cls, config: ConfigSource, *, health: HealthRegistry | None = None) -> Self:
        """The connector ``config`` describes.

        ``discovery.client`` is ``"minos"`` (the Minos discovery service over HTTP), ``"memory"`` or the
        import path of a ``DiscoveryClient`` subclass, built with its ``from_config``; ``discovery.host``
        and ``discovery.port`` say where the discovery service is (``localhost:5567`` by default). The
        service registers as ``name``, at ``discovery.address`` (this host's IP address by default) and
        ``interfaces.http.port``, with the REST routes of its ``services``. ``discovery.startup_timeout``,
        ``discovery.retry_for`` and ``discovery.stop_timeout`` set those parameters.

        Raises:
            MinosInvalidDiscoveryClient: ``discovery.client`` is missing, cannot be imported or is not a
                ``DiscoveryClient`` subclass.
            ConfigError: A key has the wrong type, or is read neither by the connector nor by the client.
            OSError: ``discovery.address`` is not set and this host's name does not resolve.
        """
        config = as_config(config)
        client_class = _client_class(config)
        config.check_keys("discovery", discovery_keys(config))
        client = client_class.from_config(config)
        port = config.get_int("interfaces.http.port", None)
        if port is None:  # minos 0.7 kept it under the HTTP connector
            port = config.get_int("interfaces.http.connector.port", None)
        # null means: retry for as long as the service runs
        retry_for = (
            None
            if config.get("discovery.retry_for", 0) is None
            else config.get_float("discovery.retry_for", 600.0)
        )
        return cls(
            client,
            config.name,
            endpoints_from_config(config),
            config.get_str("discovery.address", "") or get_host_ip(),
            port,
            startup_timeout=config.get_float("discovery.startup_timeout", 5.0),
            retry_for=retry_for,
            stop_timeout=config.get_float("discovery.stop_timeout", 5.0),
            health=health,
        )

    def __repr__(self) -> str:
        return f"<DiscoveryConnector {self.name!r} at {self.host}:{self.port} via {self.client!r}: {self._state.value}>"

    @property
    def state(self) -> DiscoveryState:
        """Where the registration stands."""
        return self._state

    async def subscribe(self) -> None:
        """Registers the service, waiting ``startup_timeout`` at most; what is left goes on in the background.

        Idempotent while subscribed. It returns without error while discovery cannot be reached.

        Raises:
            MinosDiscoveryConnectorException: Discovery refused the registration (or the connector gave up)
                before ``startup_timeout``; the error is chained.
        """
        if self._task is None:
            self._ever_subscribed = True
            if self._health is not None:
                self._health.register(self, name=HEALTH_NAME)
            self._registered.clear()
            self._task = asyncio.get_running_loop().create_task(
                self._register(), name=f"discovery {self.name}"
            )
        task = self._task
        try:
            await asyncio.wait_for(asyncio.shield(task), self.startup_timeout)
        except TimeoutError:
            logger.warning(
                "%r: discovery at %s not reached within %s s (%r); start-up goes on while registration is "
                "retried in the background",
                self,
                self.client.route,
                self.startup_timeout,
                self.last_error,
            )
        if self._state is DiscoveryState.FAILED:
            raise MinosDiscoveryConnectorException(
                f"{self.name!r} could not register with discovery at {self.client.route}: {self.last_error}"
            ) from self.last_error

    async def start(self) -> None:
        """Registers the service: :meth:`subscribe`."""
        await self.subscribe()

    async def stop(self) -> None:
        """Removes the registration that :meth:`subscribe` made, if any (idempotent).

        Raises:
            MinosDiscoveryConnectorException: Discovery could not be told within ``stop_timeout``.
        """
        if self._task is not None:
            await self.unsubscribe()

    async def unsubscribe(self) -> None:
        """Removes the registration, waiting ``stop_timeout`` at most; stops retrying if still at it.

        A connector that never subscribed asks discovery to remove the service all the same, as minos 0.7
        did (a registration left by an earlier run goes); after its own registration was removed, it sends
        nothing more.

        Raises:
            MinosDiscoveryConnectorException: Discovery could not be told within ``stop_timeout``; the error
                is chained.
        """
        task, self._task = self._task, None
        if task is None:
            if not self._ever_subscribed:
                await self._withdraw(registered=True)
            return
        if self._health is not None:
            self._health.unregister(self)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        registered = self._state is DiscoveryState.REGISTERED
        maybe = self._in_flight  # an attempt cut short may have reached discovery all the same
        self._state, self._in_flight = DiscoveryState.UNREGISTERED, False
        self._registered.clear()
        if not (registered or maybe):
            return  # discovery never had it
        await self._withdraw(registered=registered)

    async def _withdraw(self, *, registered: bool) -> None:
        try:
            async with asyncio.timeout(self.stop_timeout):
                await self.client.unsubscribe(self.name)
        except Exception as exc:
            self.last_error = exc
            if not registered:
                logger.warning(
                    "%r: could not undo the registration attempt cut short by the stop: %r", self, exc
                )
                return
            raise MinosDiscoveryConnectorException(
                f"{self.name!r} could not unregister from discovery at {self.client.route} within "
                f"{self.stop_timeout} s: {exc!r}; it stays listed there until discovery drops it"
            ) from exc
        logger.info("%r: unregistered from discovery", self)

    async def wait_registered(self, timeout: float | None = None) -> None:
        """Returns once the service is registered.

        Raises:
            TimeoutError: It was not registered within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._registered.wait()

    def health(self) -> ComponentHealth:
        """Healthy once registered; the detail says how the registration stands."""
        if self._state is DiscoveryState.REGISTERED:
            return ComponentHealth(True, f"registered as {self.name!r} at {self.client.route}")
        detail = f"{self._state.value} with {self.client.route} after {self.attempts} attempts"
        if self.last_error is not None:
            detail += f"; last error {self.last_error}"
        return ComponentHealth(False, detail)

    async def _register(self) -> None:
        self._state = DiscoveryState.REGISTERING
        give_up_at = None if self.retry_for is None else self._clock() + self.retry_for
        self.attempts = 0
        while True:
            self.attempts += 1
            self._in_flight = True  # stays True if the attempt is cancelled: it may have got through
            try:
                await self.client.subscribe(self.host, self.port, self.name, self.endpoints)
            except Exception as exc:
                error: Exception | None = exc
            else:
                error = None
            self._in_flight = False
            if error is None:
                self._state = DiscoveryState.REGISTERED
                self._registered.set()
                logger.info("%r: registered with discovery at %s", self, self.client.route)
                return
            self.last_error = error
            if not isinstance(error, _RETRYABLE):
                self._state = DiscoveryState.FAILED
                logger.error("%r: discovery refused the registration: %s", self, error)
                return
            delay = self.backoff.delay(self.attempts)
            if give_up_at is not None and self._clock() + delay > give_up_at:
                self._state = DiscoveryState.FAILED
                logger.error("%r: gave up after %d attempts over %s s", self, self.attempts, self.retry_for)
                return
            self._state = DiscoveryState.RETRYING
            logger.warning("%r: attempt %d failed (%s); next in %.2f s", self, self.attempts, error, delay)
            await self._sleep(delay)


def endpoints_from_config(config: Config) -> list[dict[str, Any]]:
    """The REST endpoints of the services in ``config``: ``{"url", "method", **kwargs}``, sorted by both.

    Raises:
        ImportError: A service cannot be imported.
    """
    endpoints: dict[tuple[str, str], dict[str, Any]] = {}
    for service in config.services:
        decorators = EnrouteCollector(service, config).get_rest_command_query().values()
        for decorator in chain.from_iterable(decorators):
            assert isinstance(decorator, RestEnrouteDecorator)
            endpoint = {"url": decorator.url, "method": decorator.method, **decorator.kwargs}
            endpoints.setdefault((decorator.url, decorator.method), endpoint)
    return sorted(endpoints.values(), key=itemgetter("url", "method"))


def discovery_keys(config: Config) -> KnownKeys:
    """The keys of ``discovery``: the connector's and those the client ``discovery.client`` names reads
    (``DiscoveryClient.config_keys``; the built-in clients' while it names none that can be used)."""
    try:
        clients: list[type[DiscoveryClient]] = [_client_class(config)]
    except Exception:  # whatever the client's module raises: DiscoveryConnector.from_config says it
        clients = list(CLIENTS.values())
    names = sorted({name for client in clients for name in client.config_keys})
    return {**DISCOVERY_KEYS, **dict.fromkeys(names)}


def _client_class(config: Config) -> type[DiscoveryClient]:
    path = config.get("discovery.client", None)
    if path is None:
        raise MinosInvalidDiscoveryClient(
            f"no discovery client is configured in {config.source}: set discovery.client to 'minos', 'memory' "
            "or the import path of a DiscoveryClient subclass"
        )
    found: object = path
    if isinstance(path, str):
        try:
            found = CLIENTS[path] if path in CLIENTS else import_object(path)
        except ImportError as exc:
            raise MinosInvalidDiscoveryClient(f"discovery.client {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, DiscoveryClient)):
        raise MinosInvalidDiscoveryClient(
            f"discovery.client {path!r} is not a DiscoveryClient subclass; name 'minos', 'memory' or the "
            "import path of a subclass"
        )
    return found
