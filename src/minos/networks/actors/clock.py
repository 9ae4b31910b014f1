"""Clock and Sleep: the time and the waiting that timed code takes as parameters, so tests can inject fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

__all__ = ["Clock", "Sleep", "utc_now"]

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime (UTC by default)."""

Sleep = Callable[[float], Awaitable[None]]
"""Suspends the caller for a number of seconds without blocking the event loop."""


def utc_now() -> datetime:
    """The default ``Clock``: now, in UTC."""
    return datetime.now(UTC)
