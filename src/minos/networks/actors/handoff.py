"""LoopHandoff: calls made from other threads run in one event loop, a batch per wake-up."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["LoopHandoff", "resolve"]


class LoopHandoff:
    """Runs callbacks handed over from any thread in ``loop``, many per wake-up.

    ``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call; a burst of results (a
    group commit, a batch of broker acceptances) would pay one write and one wake-up each. Here the
    first call of a burst schedules one drain, and the calls that arrive before it runs ride along.
    A call made on the loop's own thread runs at once: there is nothing to hand over.

    Build it in the loop's thread (it remembers that thread).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread = threading.get_ident()
        self._ready: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._scheduled = False

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop: at once on its own thread, else soon; any thread may call."""
        if threading.get_ident() == self._thread:
            callback(*args)
            return
        self._ready.append((callback, args))
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._run_all)
            except RuntimeError:  # the loop is closed: nobody is left to take the results
                self._scheduled = False

    def _run_all(self) -> None:
        self._scheduled = False  # first: a call queued from now on schedules another drain
        ready = self._ready
        while ready:
            callback, args = ready.popleft()
            callback(*args)


def resolve(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Settle ``future`` with ``error`` if given, else with ``result``; a future already done is left alone."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
