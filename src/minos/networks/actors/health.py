"""Readiness: the health checks components register while they run, in a registry a health endpoint reads."""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["ComponentHealth", "HealthCheck", "HealthRegistry"]

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

    Ports and connectors given one register themselves when they start and unregister when they stop, so
    a ``SystemService`` reading it sees exactly what runs. The composition root (``ServiceRunner``) creates
    one per service and hands it to every part; there is no process-wide one.
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
