"""CronTab: when a periodic handler runs, read from a cron pattern with croniter, on an injectable clock."""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

from croniter import CroniterError, croniter

from ..actors.clock import Clock, Sleep, utc_now

__all__ = ["CronTab"]

_REBOOT: Final = "@reboot"
_ALIASES: Final = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_HELP: Final = (
    "write 5 fields (minute hour day-of-month month day-of-week), 6 fields with seconds first "
    "(second minute hour day-of-month month day-of-week), 7 with a year last (minos 0.7's form), or one of "
    "@reboot, " + ", ".join(sorted(_ALIASES))
)


class CronTab:
    """A cron schedule: how long until it next fires, sleeping until then, and async iteration over firings.

    Patterns have 5 fields (``"*/5 * * * *"``: every 5 minutes), 6 with the seconds first
    (``"0 */5 * * * *"``: every 5 minutes, at second 0; minos 0.7 read six fields as minute ... year
    instead), or 7, seconds first and a year last (``"0 */5 * * * * 2030"``), as minos 0.7 wrote them.
    The aliases ``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly`` and
    ``@annually`` are accepted, and ``@reboot`` fires once, straight away. Patterns are evaluated in the
    timezone of the clock's datetimes, so in UTC with the default clock.

    Two crontabs are equal when croniter reads their patterns the same way (``"@hourly"`` equals
    ``"0 * * * *"`` and ``"0 0 * * * *"``); the clock is not part of the value.

    Args:
        pattern: The cron pattern, or a ``croniter`` instance used as it is.
        clock: Returns the current time as an aware datetime; ``datetime.now(UTC)`` by default.
            Tests pass a fake clock.
        sleep: Suspends for a number of seconds; ``asyncio.sleep`` by default. Tests pass one that
            advances their fake clock.

    Raises:
        ValueError: The pattern is not valid cron, or never matches any date; the message quotes it.
        TypeError: The pattern is neither a string nor a ``croniter``.
    """

    __slots__ = ("_clock", "_impl", "_key", "_pattern", "_sleep")

    def __init__(
        self, pattern: str | croniter, clock: Clock | None = None, *, sleep: Sleep | None = None
    ) -> None:
        self._clock: Clock = utc_now if clock is None else clock
        self._sleep: Sleep = asyncio.sleep if sleep is None else sleep
        impl: Any
        if isinstance(pattern, croniter):
            impl = pattern
            expressions = list(impl.expressions)
            # croniter keeps the seconds sixth whatever the input order; show them first, as we read them.
            text = " ".join(expressions[5:6] + expressions[:5] + expressions[6:])
        elif isinstance(pattern, str):
            text = " ".join(pattern.split())
            impl = None if text.lower() == _REBOOT else _parse(pattern, text)
            expressions = [] if impl is None else list(impl.expressions)
        else:
            raise TypeError(
                f"a crontab pattern must be a str such as '*/5 * * * *' or a croniter, got {pattern!r}"
            )
        if impl is not None:
            _check_matches(pattern, impl, self._clock())
            if len(expressions) == 5:  # "* * * * *" fires at second 0, as "0 * * * * *" does
                expressions.append("0")
            if expressions[6:] == ["*"]:  # "0 * * * * * *" is "0 * * * * *": any year
                del expressions[6:]
        self._impl = impl
        self._pattern = text
        self._key: tuple[str, ...] = tuple(expressions) if impl is not None else (_REBOOT,)

    @property
    def pattern(self) -> str:
        """The pattern as given (whitespace collapsed), seconds first when it has six or seven fields."""
        return self._pattern

    @property
    def clock(self) -> Clock:
        """Returns the current time; what this crontab reads ``now`` from."""
        return self._clock

    @property
    def sleep(self) -> Sleep:
        """What :meth:`sleep_until_next` suspends with."""
        return self._sleep

    @property
    def impl(self) -> croniter | None:
        """The ``croniter`` behind this crontab, or None for ``@reboot``."""
        return self._impl

    @property
    def repetitions(self) -> int | float:
        """How many times the schedule fires: ``math.inf``, or 1 for ``@reboot``."""
        return 1 if self._impl is None else math.inf

    def get_next(self, now: datetime | None = None) -> datetime:
        """Returns the first firing strictly after ``now``; for ``@reboot``, ``now`` itself.

        Args:
            now: The reference time, the clock's by default; a naive datetime is read as UTC.
        """
        now = _aware(self._clock() if now is None else now)
        if self._impl is None:
            return now
        # croniter objects are stateful; a copy keeps concurrent callers from disturbing each other.
        result: datetime = copy.copy(self._impl).get_next(datetime, start_time=now)
        return result

    def get_delay_until_next(self, now: datetime | None = None) -> float:
        """Returns the seconds from ``now`` until the next firing; 0 for ``@reboot``.

        Args:
            now: The reference time, the clock's by default; a naive datetime is read as UTC.
        """
        now = _aware(self._clock() if now is None else now)
        return (self.get_next(now) - now).total_seconds()

    async def sleep_until_next(self) -> datetime:
        """Sleeps until the next firing and returns its scheduled time.

        Never returns before that time on the clock, even when the sleep wakes a little early (asyncio may
        wake up to one clock resolution before the deadline), so a firing is never seen twice.
        """
        target = self.get_next()
        delay = (target - _aware(self._clock())).total_seconds()
        if self._impl is None:
            await self._sleep(0)
        while delay > 0:
            await self._sleep(delay)
            delay = (target - _aware(self._clock())).total_seconds()
        return target

    def __aiter__(self) -> AsyncIterator[datetime]:
        return self._firings()

    async def _firings(self) -> AsyncIterator[datetime]:
        # The next delay is computed after the consumer's body ran, so runs never overlap: a firing
        # missed while the body was still running is skipped, not queued.
        fired = 0
        while fired < self.repetitions:
            yield await self.sleep_until_next()
            fired += 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronTab) and self._key == other._key

    def __hash__(self) -> int:
        return hash((CronTab, self._key))

    def __repr__(self) -> str:
        return f"CronTab({self._pattern!r})"


def _parse(pattern: str, text: str) -> Any:
    if text.startswith("@"):
        if text.lower() not in _ALIASES:
            raise ValueError(f"invalid crontab pattern {pattern!r}: unknown alias; {_HELP}")
    elif len(text.split()) not in (5, 6, 7):
        raise ValueError(f"invalid crontab pattern {pattern!r}: it has {len(text.split())} fields; {_HELP}")
    try:
        return croniter(text, second_at_beginning=True)
    except (CroniterError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"invalid crontab pattern {pattern!r}: {exc}; {_HELP}") from exc


def _check_matches(pattern: object, impl: Any, now: datetime) -> None:
    try:
        copy.copy(impl).get_next(datetime, start_time=_aware(now))
    except CroniterError as exc:
        raise ValueError(f"invalid crontab pattern {pattern!r}: it never matches a date ({exc})") from exc


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
