"""PeriodicTask: a handler run at each firing of a crontab, in an actor of its own, never overlapping itself."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from croniter import croniter

from ..actors import ActorContext, ActorService, ChildSpec, LoopActor, tell
from ..actors.clock import Clock, Sleep
from ..enroute.cron import CronTab
from ..exceptions import ResponseException
from ..tracing import periodic_run
from .requests import ScheduledRequest

__all__ = ["PeriodicTask", "PeriodicTaskActor"]

logger = logging.getLogger(__name__)

_MAX_COUNTED_MISSES = 1000  # beyond this, a late run is reported as "at least" that many skipped firings
_CANCEL_MARGIN = 3.0  # seconds a task's actor gets, beyond its stop_timeout, to cancel and close its loop


class PeriodicTask:
    """Runs ``fn`` at each firing of a crontab, in an actor of its own, one run at a time.

    A run never overlaps the previous one: the next firing is looked for only once a run has ended, so a
    firing that came and went while a run was still going is skipped, counted in :attr:`skipped` and
    logged, never queued. A run that fails (``fn`` raises) is logged, counted in :attr:`failures` and kept
    in :attr:`last_error`; the schedule goes on. ``@reboot`` runs once, as soon as the task starts.

    ``start()`` runs the task under a supervisor of its own; a :class:`PeriodicTaskScheduler` runs its
    tasks under one supervisor instead. Either way ``fn`` runs in the actor's event loop, not in the
    caller's.

    Args:
        crontab: When to run: a pattern such as ``"0 */5 * * * *"`` (see ``CronTab``), a ``CronTab`` or a
            ``croniter``.
        fn: The handler, sync or async, called with a :class:`ScheduledRequest`; what it returns is ignored.
        clock: The time source of the schedule (tests pass a ``FakeClock``); the crontab's own by default.
        sleep: What the schedule sleeps with (tests pass ``FakeClock.sleep``); the crontab's own by default.
        name: Names the task in logs, and its actor when it runs on its own; from ``fn`` by default.
        stop_timeout: Seconds a run in progress at stop may take to finish before it is cancelled.
    """

    def __init__(
        self,
        crontab: str | CronTab | croniter,
        fn: Callable[[ScheduledRequest], Any],
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        name: str | None = None,
        stop_timeout: float = 5.0,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a periodic task runs a callable taking a ScheduledRequest, got {fn!r}")
        if stop_timeout < 0:
            raise ValueError(f"stop_timeout must be 0 or more seconds, got {stop_timeout!r}")
        if not isinstance(crontab, CronTab):
            crontab = CronTab(crontab, clock, sleep=sleep)
        elif clock is not None or sleep is not None:
            pattern = crontab.impl if crontab.impl is not None else crontab.pattern
            crontab = CronTab(pattern, clock or crontab.clock, sleep=sleep or crontab.sleep)
        self._crontab = crontab
        self._fn = fn
        self.name = name or f"periodic-{getattr(fn, '__qualname__', type(fn).__name__)}"
        self.stop_timeout = stop_timeout
        self._run_lock = threading.Lock()  # held during a run: runs never overlap, whoever starts them
        self._in_scheduled_run = False
        self._stopping = False
        self._actor: Any = None  # the ref of the actor running the schedule, while it runs
        self._service: ActorService | None = None
        self.runs = 0
        self.failures = 0
        self.skipped = 0
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else ("started" if self.started else "stopped")
        return f"<PeriodicTask {self.name!r} {self._crontab.pattern!r} {state}>"

    @property
    def crontab(self) -> CronTab:
        """The schedule."""
        return self._crontab

    @property
    def fn(self) -> Callable[[ScheduledRequest], Any]:
        """The handler."""
        return self._fn

    @property
    def started(self) -> bool:
        """Whether the task's actor is up and following the schedule."""
        actor = self._actor
        return actor is not None and bool(actor.is_alive())

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._run_lock.locked()

    def child_spec(self, name: str) -> ChildSpec:
        """How a supervisor starts (and restarts) the actor of this task, under ``name``."""
        return ChildSpec(
            name,
            partial(PeriodicTaskActor.start, task=self),
            stop_timeout=self.stop_timeout + _CANCEL_MARGIN,
        )

    async def start(self) -> None:
        """Starts the task's actor under a supervisor of its own; idempotent.

        Raises:
            RuntimeError: A ``PeriodicTaskScheduler`` runs this task; start and stop the scheduler instead.
        """
        if self._service is None:
            if self._actor is not None:
                raise RuntimeError(f"{self!r} is run by a PeriodicTaskScheduler; start and stop that instead")
            self._service = ActorService(self.name, [self.child_spec(self.name)])
        await self._service.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Stops following the schedule; a run in progress gets ``stop_timeout`` to finish, then is cancelled.

        Args:
            timeout: Seconds to wait for the actor at most; the ``ActorService`` default (30 s) if None.

        Raises:
            RuntimeError: A ``PeriodicTaskScheduler`` runs this task; stop the scheduler instead.
        """
        service, self._service = self._service, None
        if service is None:
            if self._actor is not None:
                raise RuntimeError(f"{self!r} is run by a PeriodicTaskScheduler; stop that instead")
            return
        await service.stop(timeout)

    async def run_once(self, now: datetime | None = None) -> bool:
        """Runs the handler once now, unless a run is already in progress (then the call is skipped).

        Args:
            now: When the run is due, given to the handler as ``scheduled_at``; the clock's time if None.

        Returns:
            True if the handler ran (successfully or not); False if it was skipped because the previous run
            was still going: runs never overlap.
        """
        scheduled_at = self._crontab.clock() if now is None else now
        if not self._run_lock.acquire(blocking=False):
            self.skipped += 1
            logger.warning(
                "periodic task %r: the run due at %s is skipped, as the previous run is still going "
                "(runs never overlap)",
                self.name,
                scheduled_at,
            )
            return False
        try:
            with periodic_run(self.name, scheduled_at):  # a span when tracing is on
                result = self._fn(ScheduledRequest(scheduled_at))
                if inspect.isawaitable(result):
                    await result
        except ResponseException as exc:
            self._failed(exc)
            logger.warning(
                "periodic task %r: the run due at %s failed with status %s: %s",
                self.name,
                scheduled_at,
                exc.status,
                exc,
            )
        except Exception as exc:
            self._failed(exc)
            logger.exception("periodic task %r: the run due at %s failed", self.name, scheduled_at)
        finally:
            self.runs += 1
            self._run_lock.release()
        return True

    async def run_forever(self) -> None:
        """Runs the handler at each firing of the schedule until cancelled (or after ``@reboot``'s one run)."""
        fired = 0
        while fired < self._crontab.repetitions:
            scheduled_at = await self._crontab.sleep_until_next()
            fired += 1
            self._in_scheduled_run = True
            try:
                await self.run_once(scheduled_at)
            finally:
                self._in_scheduled_run = False
            if self._stopping:
                return
            self._note_missed(scheduled_at)

    def health(self) -> tuple[bool, str]:
        """Healthy while the task's actor follows the schedule; the detail counts runs and failures."""
        counts = f"{self.runs} runs, {self.failures} failed, {self.skipped} skipped"
        if self.last_error is not None:
            counts += f"; last error {self.last_error!r}"
        if not self.started:
            return False, f"{self.name}: not running ({counts})"
        return True, f"{self.name}: {self._crontab.pattern!r}, {counts}"

    def _failed(self, error: Exception) -> None:
        self.failures += 1
        self.last_error = error

    def _note_missed(self, scheduled_at: datetime) -> None:
        if self._crontab.repetitions == 1:
            return
        now = self._crontab.clock()
        missed = 0
        following = self._crontab.get_next(scheduled_at)
        while following <= now and missed < _MAX_COUNTED_MISSES:
            missed += 1
            following = self._crontab.get_next(following)
        if missed:
            self.skipped += missed
            logger.warning(
                "periodic task %r: the run due at %s lasted until %s, past %s%d later firing(s), which are "
                "skipped (runs never overlap); the next run is due at %s",
                self.name,
                scheduled_at,
                now,
                "at least " if missed == _MAX_COUNTED_MISSES else "",
                missed,
                following,
            )

    def _attach(self, actor: Any) -> None:
        self._stopping = False
        self._actor = actor

    def _detach(self, actor: Any) -> None:
        if self._actor is actor:
            self._actor = None


@dataclass(frozen=True, slots=True)
class _ScheduleFailed:
    error: BaseException


class PeriodicTaskActor(LoopActor):
    """The actor of one periodic task: its event loop follows the schedule and runs the handler.

    Should the schedule itself fail (not a run: those are counted and the schedule goes on), the actor
    fails, and its supervisor restarts it.

    Args:
        context: Name, parent and dead letters (see ``Actor``).
        task: The task to run.
    """

    def __init__(self, context: ActorContext | None = None, *, task: PeriodicTask) -> None:
        super().__init__(context, stop_timeout=task.stop_timeout + 1.0)
        self.task = task
        self._runner: asyncio.Task[None] | None = None

    async def on_loop_start(self) -> None:
        self.task._attach(self.actor_ref)
        runner = asyncio.get_running_loop().create_task(self.task.run_forever(), name=self.task.name)
        runner.add_done_callback(self._schedule_ended)
        self._runner = runner

    async def on_loop_stop(self) -> None:
        task, runner = self.task, self._runner
        task._stopping = True
        if runner is not None and not runner.done():
            if task._in_scheduled_run:  # let the run finish, within bounds; a sleep is cut short at once
                try:
                    await asyncio.wait_for(asyncio.shield(runner), task.stop_timeout)
                except TimeoutError:
                    logger.warning(
                        "periodic task %r: the run in progress did not end within %s s and is cancelled",
                        task.name,
                        task.stop_timeout,
                    )
                except Exception:
                    pass  # the schedule failed: _schedule_ended reports it
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        task._detach(self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ScheduleFailed):
            raise message.error  # fail, so the supervisor restarts the actor
        return super().on_receive(message)

    def _schedule_ended(self, runner: asyncio.Task[None]) -> None:
        if runner.cancelled() or runner.exception() is None:
            return
        error = runner.exception()
        assert error is not None
        logger.error("periodic task %r: its schedule failed: %r", self.task.name, error)
        tell(self.actor_ref, _ScheduleFailed(error), dead_letters=self.context.dead_letters)
