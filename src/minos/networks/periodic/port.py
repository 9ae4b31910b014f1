"""PeriodicPort runs a service's periodic side: its scheduler, started, stopped and reported on in health."""

from __future__ import annotations

from typing import Self

from minos.common import ConfigSource, as_config

from ..actors import StartStop
from ..actors.clock import Clock, Sleep
from ..actors.health import HealthRegistry
from .scheduler import PeriodicTaskScheduler

__all__ = ["PeriodicPort"]


class PeriodicPort(StartStop):
    """The periodic side of a service: the scheduler of its ``@enroute.periodic.event`` handlers.

    While started, the port is registered in the health registry it was given as ``name``: healthy while
    every task's actor follows its schedule.

    Args:
        scheduler: Runs the tasks.
        name: Names the port in the health report.
        health: Where to register while started; None registers it nowhere.
    """

    def __init__(
        self,
        scheduler: PeriodicTaskScheduler,
        *,
        name: str = "periodic",
        health: HealthRegistry | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._name = name
        self._health = health

    @classmethod
    def from_config(
        cls,
        config: ConfigSource,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        health: HealthRegistry | None = None,
    ) -> Self:
        """The port of the periodic handlers of the services listed in ``config``.

        Args:
            config: The service's configuration (``services``, and ``interfaces.periodic.stop_timeout``).
            clock: The time source of every task (tests pass a ``FakeClock``).
            sleep: What every task sleeps with (tests pass ``FakeClock.sleep``).
            health: Where to register while started; None registers it nowhere.
        """
        config = as_config(config)
        return cls(PeriodicTaskScheduler.from_config(config, clock=clock, sleep=sleep), health=health)

    def __repr__(self) -> str:
        return f"<PeriodicPort {self._name!r} {self.scheduler!r}>"

    @property
    def name(self) -> str:
        """Names the port in the health report."""
        return self._name

    @property
    def running(self) -> bool:
        """Whether the port was started and not stopped."""
        return self.scheduler.running

    async def start(self) -> None:
        """Starts the tasks' actors and registers the port's health check (if given a registry); idempotent."""
        await self.scheduler.start()
        if self._health is not None:
            self._health.register(self)

    async def stop(self, timeout: float | None = None) -> None:
        """Unregisters the port's health check and stops the tasks (runs in progress get to finish, bounded).

        Args:
            timeout: Seconds to wait for the tasks' actors at most; the ``ActorService`` default if None.
        """
        if self._health is not None:
            self._health.unregister(self)
        await self.scheduler.stop(timeout)

    def health(self) -> tuple[bool, str]:
        """Healthy while every task's actor follows its schedule."""
        return self.scheduler.health()
