"""SystemService, which answers ``GET /system/health`` from the health checks the components registered."""

from __future__ import annotations

import asyncio
import logging

from minos.common import Config

from ..actors.health import HealthRegistry
from ..enroute import enroute
from ..protocol.requests import Request, Response
from ..transports.network import get_host_ip

__all__ = ["SystemService"]

logger = logging.getLogger(__name__)


class SystemService:
    """The system endpoints of a service; list it in ``services:`` to serve ``GET /system/health``.

    Listed there, it is built by the composition root (``ServiceRunner``) with the registry every part of
    the service registers in. Built alone, it reports no components (200).

    Args:
        config: The service's configuration (unused; taken so the service can be built from it).
        registry: Where the components' health checks are; an empty registry of its own if None.
    """

    def __init__(self, config: Config | None = None, *, registry: HealthRegistry | None = None) -> None:
        self.config = config
        self.registry = HealthRegistry() if registry is None else registry
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
