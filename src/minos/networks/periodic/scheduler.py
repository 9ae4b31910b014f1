"""PeriodicTaskScheduler: a service's periodic tasks, one actor each, under one supervisor."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Self

from minos.common import ConfigSource, KnownKeys, as_config

from ..actors import ActorService, RestartPolicy, StartStop
from ..actors.clock import Clock, Sleep
from ..enroute import PeriodicEventEnrouteDecorator, PeriodicRouter
from .task import PeriodicTask

__all__ = ["PERIODIC_KEYS", "PeriodicTaskScheduler"]

logger = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 5.0
"""Seconds a run in progress at stop may take to finish, unless ``interfaces.periodic.stop_timeout`` says."""
PERIODIC_KEYS: KnownKeys = {"stop_timeout": None}
"""The keys of ``interfaces.periodic`` (read here); any other is an error."""


class PeriodicTaskScheduler(StartStop):
    """Runs periodic tasks, each in an actor of its own, under one supervisor that restarts what crashes.

    Args:
        tasks: The tasks; each may belong to one scheduler only, and is not started on its own.
        name: Names the supervisor and the actors (``minos-<name>-<n>``).
        policy: The supervisor's restart intensity.

    Raises:
        ValueError: A task is given twice.
    """

    def __init__(
        self, tasks: Iterable[PeriodicTask], *, name: str = "periodic", policy: RestartPolicy | None = None
    ) -> None:
        self.tasks = tuple(tasks)
        if len({id(task) for task in self.tasks}) != len(self.tasks):
            raise ValueError(f"a task is given twice to the scheduler: {self.tasks!r}")
        self.name = name
        children = [task.child_spec(f"{name}-{index}") for index, task in enumerate(self.tasks, start=1)]
        self.service = ActorService(name, children, policy=policy)

    @classmethod
    def from_config(
        cls, config: ConfigSource, *, clock: Clock | None = None, sleep: Sleep | None = None
    ) -> Self:
        """The scheduler of the periodic handlers (``@enroute.periodic.event``) of the services in ``config``.

        Each route becomes one task; event handlers sharing a schedule share its task and run in turn.
        ``interfaces.periodic.stop_timeout`` (seconds, default 5) bounds how long a run in progress at
        stop may take before it is cancelled.

        Args:
            config: The service's configuration.
            clock: The time source of every task (tests pass a ``FakeClock``).
            sleep: What every task sleeps with (tests pass ``FakeClock.sleep``).

        Raises:
            ConfigError: ``interfaces.periodic.stop_timeout`` is not a number, or ``interfaces.periodic``
                has a key that is not in ``PERIODIC_KEYS``.
            ImportError: A service cannot be imported.
        """
        config = as_config(config)
        config.check_keys("interfaces.periodic", PERIODIC_KEYS)
        stop_timeout = config.get_float("interfaces.periodic.stop_timeout", DEFAULT_STOP_TIMEOUT)
        tasks = []
        for decorator, action in PeriodicRouter.from_config(config).routes.items():
            assert isinstance(decorator, PeriodicEventEnrouteDecorator)
            name = f"periodic-{getattr(action, '__qualname__', decorator.crontab.pattern)}"
            tasks.append(
                PeriodicTask(
                    decorator.crontab, action, clock=clock, sleep=sleep, name=name, stop_timeout=stop_timeout
                )
            )
        return cls(tasks, name=f"{config.name}-periodic")

    def __repr__(self) -> str:
        return f"<PeriodicTaskScheduler {self.name!r} {len(self.tasks)} tasks {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        """Whether the scheduler was started and not stopped."""
        return self.service.running

    async def start(self) -> None:
        """Starts every task's actor, in order; idempotent.

        Raises:
            Exception: What a task's actor raised when it did not start; those started are stopped again.
        """
        await self.service.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Stops every task: runs in progress get their ``stop_timeout`` to finish, then are cancelled.

        Args:
            timeout: Seconds to wait for all the actors at most; the ``ActorService`` default if None.
        """
        await self.service.stop(timeout)

    def health(self) -> tuple[bool, str]:
        """Healthy while started with every task's actor following its schedule; the detail names the others."""
        if not self.running:
            return False, "the periodic tasks are not started"
        stopped = [task.name for task in self.tasks if not task.started]
        if stopped:
            return False, f"periodic tasks not running: {', '.join(stopped)}"
        return True, f"{len(self.tasks)} periodic tasks running"
