"""FakeClock: simulated time for testing periodic code, moved by sleeps or by the test, never waited for."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..enroute.cron import CronTab

__all__ = ["FakeClock"]


@dataclass(eq=False, slots=True)
class _Sleeper:
    deadline: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class FakeClock:
    """A clock that stands still until code sleeps on it or the test advances it (like trio's ``MockClock``).

    Pass the clock and its :meth:`sleep` wherever a clock and a sleep are injected (``CronTab``,
    ``PeriodicTask``, ``PeriodicPort.from_config``). It is thread-safe: tasks' actors sleep on it in their
    own loops while the test reads and moves it from its own.

    With ``autojump`` (the default) a sleep moves the time forward by what it asks, at once, so a schedule of
    a year runs in a blink; that suits one sleeper. With several (one clock for many tasks) turn it off: a
    sleep then waits until the test has moved the time past its deadline with :meth:`advance`, and
    :meth:`wait_sleeping` tells the test when the sleepers are all waiting again::

        clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC), autojump=False)
        async with PeriodicPort.from_config(config, clock=clock, sleep=clock.sleep):
            for _ in range(12):
                await clock.wait_sleeping(2)  # both tasks wait for their next firing
                clock.advance(300)

    Args:
        now: The starting time; an aware datetime (a naive one is read as UTC). Midnight of 1 January 2024
            UTC by default.
        autojump: Whether a sleep moves the time itself, or waits for :meth:`advance`.
    """

    def __init__(self, now: datetime | None = None, *, autojump: bool = True) -> None:
        start = datetime(2024, 1, 1, tzinfo=UTC) if now is None else now
        self.autojump = autojump
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._now = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        self._slept = 0.0
        self._sleepers: list[_Sleeper] = []

    def __call__(self) -> datetime:
        """Returns the current simulated time."""
        with self._lock:
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self():%Y-%m-%d %H:%M:%S%z}, autojump={self.autojump})"

    @property
    def now(self) -> datetime:
        """The current simulated time."""
        return self()

    @property
    def slept(self) -> float:
        """The simulated seconds asked of :meth:`sleep` so far."""
        with self._lock:
            return self._slept

    @property
    def sleeping(self) -> int:
        """How many sleepers wait for the time to reach their deadline (without ``autojump``)."""
        with self._lock:
            return len(self._sleepers)

    def advance(self, seconds: float) -> datetime:
        """Moves the time forward, as work that takes that long would, and wakes the sleepers now due.

        Args:
            seconds: How far; 0 or more.

        Returns:
            The new time.

        Raises:
            ValueError: ``seconds`` is negative: time never goes back.
        """
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; cannot advance by {seconds!r} s")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            now = self._now
            due = [sleeper for sleeper in self._sleepers if sleeper.deadline <= now]
            self._sleepers = [sleeper for sleeper in self._sleepers if sleeper.deadline > now]
            self._changed.notify_all()
        for sleeper in due:
            try:
                sleeper.loop.call_soon_threadsafe(_wake, sleeper.future)
            except RuntimeError:
                pass  # its loop is closed: nobody waits any more
        return now

    async def sleep(self, seconds: float) -> None:
        """Sleeps ``seconds`` of simulated time (a negative delay counts as 0).

        With ``autojump`` the time moves forward at once; otherwise this waits for :meth:`advance`. Either
        way it yields to the loop at least once, so other tasks run, and a cancellation arrives, between
        sleeps.
        """
        seconds = max(seconds, 0.0)
        loop = asyncio.get_running_loop()
        with self._lock:
            self._slept += seconds
            if self.autojump or seconds == 0:
                self._now += timedelta(seconds=seconds)
                sleeper = None
            else:
                sleeper = _Sleeper(self._now + timedelta(seconds=seconds), loop, loop.create_future())
                self._sleepers.append(sleeper)
                self._changed.notify_all()
        if sleeper is None:
            await asyncio.sleep(0)
            return
        try:
            await sleeper.future
        finally:
            with self._lock:
                if sleeper in self._sleepers:  # cancelled before its time
                    self._sleepers.remove(sleeper)
                    self._changed.notify_all()

    async def wait_sleeping(self, count: int = 1, timeout: float = 10.0) -> None:
        """Returns once at least ``count`` sleepers wait for :meth:`advance` (without ``autojump``).

        Raises:
            TimeoutError: Fewer were waiting after ``timeout`` seconds (real ones).
        """

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: len(self._sleepers) >= count, timeout)

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"{self!r}: {self.sleeping} sleepers after {timeout} s, not {count}")

    def crontab(self, pattern: str) -> CronTab:
        """Returns the crontab of ``pattern`` on this clock, sleeping with :meth:`sleep`."""
        return CronTab(pattern, self, sleep=self.sleep)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
