"""The duplicate filter: remembers (topic, identifier) pairs for a while, in bounded memory."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID

__all__ = ["DuplicateFilter"]


class DuplicateFilter:
    """Tells whether a (topic, identifier) pair was seen recently.

    At-least-once delivery means a message may arrive twice (a redelivery after a lost acknowledgement,
    a publisher resending after a reconnect); this filter keeps the second copy from reaching a handler.
    It forgets a pair after ``ttl`` seconds, and the oldest pairs first when it holds ``max_entries``,
    so memory stays bounded: a duplicate arriving later than that is handled again.

    Thread-safe: the dispatcher actors of one process share it, so a redelivery that reaches another
    dispatcher than the first copy is still caught.

    Args:
        max_entries: The most pairs remembered at once.
        ttl: Seconds a pair is remembered.
        clock: Returns the current time in seconds (``time.monotonic`` by default; tests pass a fake).
    """

    def __init__(
        self, *, max_entries: int = 100_000, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError(
                f"max_entries must be at least 1 and ttl positive, got {max_entries!r} and {ttl!r}"
            )
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        # (topic, identifier.int) -> expiry, oldest first; the int hashes in C, a UUID in Python.
        self._seen: OrderedDict[tuple[str, int], float] = OrderedDict()
        # No pair expires before this (the oldest's expiry, or earlier): until then nothing is looked at.
        self._next_expiry = float("inf")
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_remember(self, topic: str, identifier: UUID) -> bool:
        """Remember the pair and return whether it had been seen (and not yet forgotten) before."""
        key = (topic, identifier.int)
        with self._lock:
            now = self._clock()
            seen = self._seen
            if now >= self._next_expiry:
                self._expire(now)
            if key in seen:
                return True
            expiry = seen[key] = now + self.ttl
            if expiry < self._next_expiry:  # the only pair now
                self._next_expiry = expiry
            if len(seen) > self.max_entries:
                seen.popitem(last=False)  # the next expiry only moves later: _next_expiry stays safe
            return False

    def forget(self, topic: str, identifier: UUID) -> None:
        """Forget the pair, so its next copy is handled (a message given back, or replayed)."""
        with self._lock:
            self._seen.pop((topic, identifier.int), None)

    def _expire(self, now: float) -> None:
        """Drop the pairs expired at ``now``, oldest first (insertion order is expiry order)."""
        seen = self._seen
        while seen:
            oldest_key = next(iter(seen))
            expiry = seen[oldest_key]
            if expiry > now:
                self._next_expiry = expiry
                return
            del seen[oldest_key]
        self._next_expiry = float("inf")
