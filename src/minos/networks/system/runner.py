"""ServiceRunner, the composition root: checks a Config, builds the ports it describes, starts and stops them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Self

from minos.common import TOP_LEVEL_KEYS, Config, ConfigError, ConfigSource, KnownKeys, as_config

from .. import tracing
from ..actors import StartStop
from ..actors.health import HealthRegistry
from ..brokers import BROKER_KEYS, BrokerPort, BrokerSettings, broker_settings
from ..discovery import DiscoveryConnector, discovery_keys
from ..enroute import BrokerDispatcher, EnrouteCollector, import_object
from ..http import HTTP_KEYS, AioHttpConnector, HttpPort
from ..periodic import PERIODIC_KEYS, PeriodicPort
from ..specs.routes import SPEC_KEYS
from .health import SystemService
from .logs import LOGGING_KEYS, log_settings
from .metrics import ServiceCollector

__all__ = ["ServiceRunner", "check_config", "run_service", "unknown_keys"]

logger = logging.getLogger(__name__)

STOP_MARGIN = 2.0
"""Seconds granted to each part beyond its own configured drain timeout, for the actors' bookkeeping."""


@dataclass(frozen=True, slots=True)
class _Part:
    """One started piece of the service, with how to stop it and how long its stop may take."""

    name: str
    stop: Callable[[float], Awaitable[None]]
    bound: float


def unknown_keys(config: Config) -> list[ConfigError]:
    """One error per key of ``config`` that minos.networks does not read: section by section, each in file order.

    Each section's known keys are kept beside the code that reads it (``TOP_LEVEL_KEYS`` in
    ``minos.common.keys``, ``BROKER_KEYS`` in ``brokers.config`` with ``DURABLE_KEYS``, ``HTTP_KEYS``,
    ``PERIODIC_KEYS``, ``discovery_keys``, ``LOGGING_KEYS``, ``SPEC_KEYS``), and that code refuses the first
    unknown key itself, so ``X.from_config`` fails as ``check-config`` does; this lists them all at once.
    """
    return [problem for key, known in _sections(config) for problem in config.unknown_keys(key, known)]


def check_config(config: Config) -> list[ConfigError]:
    """Every problem that would stop ``config``'s service from starting, found before anything starts.

    Lists every unknown key (:func:`unknown_keys`), then checks the values on a copy without them, so a
    typo does not hide a wrong value: the broker settings (``interfaces.broker``, CURVE key files
    included), the HTTP settings (``interfaces.http``), that every service imports and its routes can be
    collected (a bad cron pattern fails its service's import), that the routers build (no topic or path
    served twice), the periodic settings, the discovery client (``discovery``) and ``logging``. The
    routers instantiate the service classes, so a service's ``__init__`` runs here. The first problem of
    each value check is reported (a section's reader stops at its first wrong value).

    Args:
        config: The configuration, already read (``Config`` checked its own layout).

    Returns:
        One ``ConfigError`` per problem, each naming the file and the key; empty when all is well.
    """
    config.log_notes()  # here, not by the copy's from_config calls below, so they are logged once
    problems = unknown_keys(config)
    # The values are checked without the unknown keys, so each reader gets past them to its own checks.
    config = config.without(problem.key for problem in problems if problem.key)
    found = len(problems)

    def check(key: str, what: Callable[[], object]) -> None:
        try:
            what()
        except ConfigError as error:
            problems.append(error if error.key else _problem(config, key, str(error), error))
        except Exception as error:  # whatever a user's module raises while imported or built
            problems.append(_problem(config, key, f"{type(error).__name__}: {error}", error))

    for index, service in enumerate(config.services):
        check(f"services[{index}]", partial(_collect, config, service))
    services_ok = len(problems) == found
    check("interfaces.broker", lambda: _check_broker(config))
    if services_ok:  # else the routers would only repeat the import errors
        check("services", lambda: _broker_routes(config))
        check("interfaces.periodic", lambda: _periodic_port(config))
    if config.has_interface("http"):
        check("interfaces.http", lambda: _http_port(config, routes=services_ok))
    if config.discovery and services_ok:  # the connector collects the services' routes: no repeat
        check("discovery.client", lambda: _discovery(config))
    check("logging", lambda: log_settings(config))
    return problems


def _sections(config: Config) -> list[tuple[str, KnownKeys]]:
    return [
        ("", TOP_LEVEL_KEYS),
        ("interfaces.broker", BROKER_KEYS),
        ("interfaces.http", HTTP_KEYS),
        ("interfaces.periodic", PERIODIC_KEYS),
        ("discovery", discovery_keys(config)),
        ("logging", LOGGING_KEYS),
        ("spec", SPEC_KEYS),
    ]


class ServiceRunner(StartStop):
    """The running service: its ports, started in order and stopped in reverse, each stop bounded.

    Start order: the broker port (the embedded broker, then the dispatchers), the HTTP port, the periodic
    port, then the discovery registration (with the HTTP port actually bound, so ``port: 0`` registers
    the picked one). Stop runs in reverse: the registration is withdrawn first so no new work is routed
    here, then each port stops taking work and drains what is in flight within its configured timeout
    (``interfaces.broker.close_timeout``, ``interfaces.http.shutdown_timeout``,
    ``interfaces.periodic.stop_timeout``, ``discovery.stop_timeout``) plus a margin.

    Build it with :meth:`from_config`; the constructor takes the parts already built.

    Args:
        name: The service's name.
        health: The registry the parts were given, which ``GET /system/health`` reads; an empty one if None.
        broker: The broker port, or None when the service has no broker routes and runs no broker.
        http: The HTTP port, or None without ``interfaces.http``.
        periodic: The periodic port, or None without periodic routes.
        discovery: The discovery registration, or None without ``discovery``.
        broker_endpoints: Where the broker is, for :meth:`describe`.
        broker_stop: Seconds the broker port's stop may take.
        periodic_stop: Seconds the periodic port's stop may take.
    """

    def __init__(
        self,
        name: str,
        *,
        health: HealthRegistry | None = None,
        broker: BrokerPort | None = None,
        http: HttpPort | None = None,
        periodic: PeriodicPort | None = None,
        discovery: DiscoveryConnector | None = None,
        broker_endpoints: tuple[str, ...] = (),
        broker_stop: float = 5.0 + STOP_MARGIN,
        periodic_stop: float = 5.0 + STOP_MARGIN,
    ) -> None:
        self.name = name
        self.health = HealthRegistry() if health is None else health
        """Where every part registers while it runs: what a listed ``SystemService`` reports."""
        self.broker = broker
        self.http = http
        self.periodic = periodic
        self.discovery = discovery
        self.broker_endpoints = broker_endpoints
        self._broker_stop = broker_stop
        self._periodic_stop = periodic_stop
        self._started: list[_Part] = []

    @classmethod
    def from_config(cls, config: ConfigSource, *, check: bool = True) -> Self:
        """The service ``config`` describes, built but not started.

        A broker port is built when a service has broker routes or ``interfaces.broker`` configures an
        embedded broker; an HTTP port when ``interfaces.http`` is present; a periodic port when a service
        has periodic routes; a discovery registration when ``discovery`` is set. The runner creates the
        one health registry (:attr:`health`) and hands it to each of them and to the ``SystemService``
        listed in ``services``, which it builds itself; it reads ``interfaces.broker`` once.

        Args:
            config: The service's configuration.
            check: Run :func:`check_config` first; pass False when the caller has just run it.

        Raises:
            ConfigError: :func:`check_config` found a problem (the first one; the rest are logged).
        """
        config = as_config(config)
        problems = check_config(config) if check else []
        if problems:
            for problem in problems[1:]:
                logger.error("%s", problem)
            raise problems[0]

        if (traced := config.get_bool("tracing", None)) is not None:  # absent: on when an SDK is set
            tracing.configure(traced)
        tracing.current()  # when on, imports the API's propagators now, not in a port's loop at its start
        settings = broker_settings(config)
        health = HealthRegistry()
        broker = None
        endpoints: tuple[str, ...] = ()
        if _broker_routes(config) or (config.has_interface("broker") and _embeds(settings)):
            broker = BrokerPort.from_config(config, settings=settings, health=health)
            if settings.nats is not None:  # the NATS servers are the broker
                endpoints = settings.nats.servers
            elif _embeds(settings):
                endpoints = (settings.endpoint, *settings.bind)
            else:
                endpoints = settings.partitions or (settings.endpoint,)
        periodic = _periodic_port(config, health)
        http = None
        if config.has_interface("http"):
            http = _http_port(config, health=health, services=_services(config, health))
            _collect_metrics(http, broker, periodic)
        return cls(
            config.name,
            health=health,
            broker=broker,
            http=http,
            periodic=periodic if periodic.scheduler.tasks else None,
            discovery=DiscoveryConnector.from_config(config, health=health) if config.discovery else None,
            broker_endpoints=endpoints,
            broker_stop=settings.close_timeout + STOP_MARGIN,
            periodic_stop=config.get_float("interfaces.periodic.stop_timeout", 5.0) + STOP_MARGIN,
        )

    @property
    def stop_bound(self) -> float:
        """Seconds :meth:`stop` takes at most: the sum of every part's bound."""
        bound = 0.0
        if self.broker is not None:
            bound += self._broker_stop
        if self.http is not None:
            bound += _http_stop(self.http)
        if self.periodic is not None:
            bound += self._periodic_stop
        if self.discovery is not None:
            bound += self.discovery.stop_timeout + STOP_MARGIN
        return bound

    def describe(self) -> str:
        """What runs, as ``key=value`` words: ``broker=ENDPOINT[,ENDPOINT] http=URL periodic=N discovery=STATE``."""
        words = []
        if self.broker is not None:
            words.append(f"broker={','.join(self.broker_endpoints)}")
        if self.http is not None:
            words.append(f"http={self.http.url if self.http.running else 'stopped'}")
        if self.periodic is not None:
            words.append(f"periodic={len(self.periodic.scheduler.tasks)}")
        if self.discovery is not None:
            words.append(f"discovery={self.discovery.state.value}")
        return " ".join(words) or "nothing to run"

    async def start(self) -> None:
        """Start every part in order; when one fails, stop those already started and raise its error."""
        try:
            if self.broker is not None:
                await self.broker.start()
                self._started.append(_Part("broker", self.broker.stop, self._broker_stop))
            if self.http is not None:
                await self.http.start()
                self._started.append(_Part("http", self.http.stop, _http_stop(self.http)))
            if self.periodic is not None:
                await self.periodic.start()
                self._started.append(_Part("periodic", self.periodic.stop, self._periodic_stop))
            if self.discovery is not None:
                discovery = self.discovery
                if self.http is not None and self.http.port is not None:
                    discovery.port = self.http.port  # the one bound, even with port 0
                self._started.append(
                    _Part(
                        "discovery",
                        _ignore_timeout(discovery.stop),
                        discovery.stop_timeout + STOP_MARGIN,
                    )
                )
                await discovery.subscribe()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> list[str]:
        """Stop the started parts in reverse order, each within its bound (idempotent).

        Returns:
            The parts that failed to stop or overran their bound (logged); empty when all stopped well.
        """
        failed: list[str] = []
        while self._started:
            part = self._started.pop()
            try:
                async with asyncio.timeout(part.bound):
                    await part.stop(part.bound - STOP_MARGIN / 2)
            except TimeoutError:
                logger.error("%s: the %s part did not stop within %.1f s", self.name, part.name, part.bound)
                failed.append(part.name)
            except Exception:
                logger.exception("%s: stopping the %s part failed", self.name, part.name)
                failed.append(part.name)
        return failed

    def __repr__(self) -> str:
        return f"<ServiceRunner {self.name!r} {self.describe()}>"


async def run_service(
    config: ConfigSource,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[ServiceRunner], object] | None = None,
) -> list[str]:
    """Build the service ``config`` describes, start it, serve until ``stop`` is set, then stop it.

    Cancelling the call stops the service too (bounded) before the cancellation goes on.

    Args:
        config: The service's configuration.
        stop: Set it to stop the service; without one, it serves until cancelled.
        ready: Called once every part has started.

    Returns:
        The parts that failed to stop within their bound; empty when all stopped well.

    Raises:
        ConfigError: The configuration is wrong; nothing was started.
        Exception: A part failed to start; the parts already started were stopped.
    """
    runner = ServiceRunner.from_config(config)  # a path or a mapping is read there
    await runner.start()
    try:
        if ready is not None:
            ready(runner)
        await (stop or asyncio.Event()).wait()
    finally:
        failed = await runner.stop()
    return failed


def _problem(config: Config, key: str, message: str, cause: BaseException) -> ConfigError:
    error = ConfigError(f"Config key {key!r} in {config.source}: {message}", key=key, source=config.source)
    error.__cause__ = cause
    return error


def _embeds(settings: BrokerSettings) -> bool:
    return settings.transport == "zmq" and settings.embedded


def _collect(config: Config, service: object) -> None:
    EnrouteCollector(service, config).get_all()


def _check_broker(config: Config) -> None:
    settings = broker_settings(config)
    if settings.curve is not None:
        settings.connection_factory()  # loads the client keys, refusing a secret key others can read
        if _embeds(settings) and settings.curve.for_broker:
            settings.curve.server()


def _broker_routes(config: Config) -> list[str]:
    return BrokerDispatcher.from_config(config).topics


def _periodic_port(config: Config, health: HealthRegistry | None = None) -> PeriodicPort:
    return PeriodicPort.from_config(config, health=health)


def _services(config: Config, health: HealthRegistry) -> tuple[object, ...]:
    """``config.services`` imported, each ``SystemService`` among them built here to report ``health``.

    The routers build the other classes as usual, and take an instance as it is.
    """
    services: list[object] = []
    for service in config.services:
        resolved = import_object(service) if isinstance(service, str) else service
        if isinstance(resolved, type) and issubclass(resolved, SystemService):
            resolved = resolved(config, registry=health)
        services.append(resolved)
    return tuple(services)


def _http_port(
    config: Config,
    *,
    routes: bool = True,
    health: HealthRegistry | None = None,
    services: tuple[object, ...] | None = None,
) -> HttpPort:
    port = HttpPort.from_config(config, health=health, services=services)
    if routes:
        connector = port.connector
        if isinstance(connector, AioHttpConnector):
            connector.check_routes()  # builds the routes: a path served twice fails here
        else:
            _ = connector.adapter.routes
    return port


def _collect_metrics(http: HttpPort, broker: BrokerPort | None, periodic: PeriodicPort) -> None:
    """With ``interfaces.http.metrics: true``, have the HTTP port's registry report the whole service."""
    connector = http.connector
    if isinstance(connector, AioHttpConnector) and connector.metrics is not None:
        services = [http.service, periodic.scheduler.service]
        connector.metrics.register(ServiceCollector(broker=broker, services=services))


def _http_stop(port: HttpPort) -> float:
    # HttpPort's own default: twice the shutdown timeout (aiohttp waits it twice), its margins, and ours.
    return 2 * port.connector.shutdown_timeout + 3 * STOP_MARGIN


def _discovery(config: Config) -> DiscoveryConnector:
    return DiscoveryConnector.from_config(config)


def _ignore_timeout(unsubscribe: Callable[[], Awaitable[None]]) -> Callable[[float], Awaitable[None]]:
    async def stop(timeout: float) -> None:  # the connector bounds its own call to discovery
        await unsubscribe()

    return stop
