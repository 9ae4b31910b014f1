"""Readiness: the health checks components register, and SystemService, which answers ``GET /system/health``."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import NamedTuple, Protocol, runtime_checkable

from minos.common import Config

from ..enroute import enroute
from ..protocol.requests import Request, Response
from .network import get_host_ip

__all__ = ["HEALTH_CHECKS", "ComponentHealth", "HealthCheck", "HealthRegistry", "SystemService"]

logger = logging.getLogger(__name__)


class ComponentHealth(NamedTuple):
    """How one component is doing: whether it is healthy, and a short description for people.

    A plain ``(bool, str)`` tuple is accepted wherever one is expected.
    """

    healthy: bool
    detail: str


@runtime_checkable
class HealthCheck(Protocol):
    """A component that can tell whether it works: a port, a connector, a pool of actors.

    ``health()`` is called from the event loop answering ``GET /system/health``, possibly while the
    component runs on other threads: it must be quick, must not block and must not raise (a check that
    raises counts as failing, with the error as its detail).
    """

    @property
    def name(self) -> str:
        """Names the component in the health report, e.g. ``"periodic"``."""
        ...

    def health(self) -> ComponentHealth | tuple[bool, str]:
        """Returns whether the component is healthy, and why."""
        ...


class HealthRegistry:
    """The health checks of the running components, by name; thread-safe.

    Ports and connectors register themselves when they start and unregister when they stop, so a
    ``SystemService`` sees exactly what runs. The process-wide one is :data:`HEALTH_CHECKS`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, HealthCheck] = {}

    def __repr__(self) -> str:
        return f"<HealthRegistry {sorted(self._checks)}>"

    def register(self, check: HealthCheck, *, name: str | None = None) -> None:
        """Adds ``check``, under ``name`` or else its own name; registering it again does nothing.

        Raises:
            ValueError: Another check already has that name (stop that component first, or name them apart).
        """
        name = check.name if name is None else name
        with self._lock:
            known = self._checks.get(name)
            if known is not None and known is not check:
                raise ValueError(
                    f"a health check named {name!r} is already registered ({known!r}); stop that "
                    "component first or give this one another name"
                )
            self._checks[name] = check

    def register_unique(self, check: HealthCheck, name: str) -> str:
        """Adds ``check`` under ``name``, or ``name#2``, ``name#3``... when that is taken; returns the name used."""
        with self._lock:
            candidate, number = name, 1
            while candidate in self._checks and self._checks[candidate] is not check:
                number += 1
                candidate = f"{name}#{number}"
            self._checks[candidate] = check
            return candidate

    def unregister(self, check: HealthCheck) -> None:
        """Removes ``check``, whatever name it was registered under; nothing happens if it was not."""
        with self._lock:
            for name in [name for name, known in self._checks.items() if known is check]:
                del self._checks[name]

    def checks(self) -> dict[str, HealthCheck]:
        """The registered checks by name, sorted by name."""
        with self._lock:
            return {name: self._checks[name] for name in sorted(self._checks)}

    def report(self) -> dict[str, ComponentHealth]:
        """Runs every check and returns their results by name; a check that raises is reported failing."""
        results: dict[str, ComponentHealth] = {}
        for name, check in self.checks().items():
            try:
                healthy, detail = check.health()
            except Exception as exc:
                logger.exception("the health check %r raised", name)
                healthy, detail = False, f"its health check raised {exc!r}"
            results[name] = ComponentHealth(bool(healthy), str(detail))
        return results


HEALTH_CHECKS = HealthRegistry()
"""The process's health checks: what ports and connectors register into by default."""


class SystemService:
    """The system endpoints of a service; list it in ``services:`` to serve ``GET /system/health``.

    Args:
        config: The service's configuration (unused; taken so the service can be built from it).
        registry: Where the components' health checks are; :data:`HEALTH_CHECKS` by default.
    """

    def __init__(self, config: Config | None = None, *, registry: HealthRegistry | None = None) -> None:
        self.config = config
        self.registry = HEALTH_CHECKS if registry is None else registry
        self._host: str | None = None

    @enroute.rest.query("/system/health", method="GET")
    async def check_health(self, request: Request) -> Response:
        """Tells whether the service is ready: every registered component healthy.

        Returns:
            200 with ``{"status": "ok", "host": ..., "components": {name: {"healthy", "detail"}}}`` when
            every component is healthy (or none is registered); 503 with ``"status": "failing"`` and
            ``"failing"``, the names of the components that are not, otherwise.
        """
        report = self.registry.report()
        failing = [name for name, result in report.items() if not result.healthy]
        content: dict[str, object] = {
            "status": "failing" if failing else "ok",
            "host": await self._host_ip(),
            "components": {
                name: {"healthy": result.healthy, "detail": result.detail} for name, result in report.items()
            },
        }
        if failing:
            content["failing"] = failing
            logger.warning("health check: failing components %s", failing)
        return Response(content, status=503 if failing else 200)

    async def _host_ip(self) -> str:
        if self._host is None:
            try:  # name resolution may block: never on the loop
                self._host = await asyncio.to_thread(get_host_ip)
            except OSError as exc:
                logger.warning("cannot resolve this host's IP address: %r", exc)
                return "unknown"
        return self._host
