"""Per-topic counters of a dispatcher: plain ints bumped on the message path, read by metrics at scrape time.

The message path only adds to ints and to one histogram bucket (no locks, no prometheus objects): one
``DispatchStats`` belongs to one dispatcher, and only the thread running that dispatcher's loop writes
it. Readers in other threads (``system.metrics`` at scrape time) see a consistent-enough snapshot: each
int is read atomically, and a topic's counters may be a message apart from each other.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Final

__all__ = ["DURATION_BUCKETS", "DispatchStats", "TopicStats", "total"]

DURATION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the handler duration histogram; most handlers here take micro- to milliseconds."""


class TopicStats:
    """What one dispatcher did with one topic's messages, since it was built.

    Attributes:
        received: Messages taken for handling (duplicates and malformed frames are not counted).
        redelivered: Of those, the ones the broker marked as delivered before (to this or another member).
        handled: Messages done with an answer (success, a 4xx, or a last failure with no dead-letter topic).
        failed: Handler runs that failed (status 500); a message retried twice and then dead-lettered counts 3.
        retried: Retries scheduled.
        dead_lettered: Dead letters the broker accepted.
        buckets: Handler runs per duration bucket (``DURATION_BUCKETS``, then one for longer runs).
        duration_sum: Seconds spent in handlers, all runs added up.
    """

    __slots__ = (
        "buckets",
        "dead_lettered",
        "duration_sum",
        "failed",
        "handled",
        "received",
        "redelivered",
        "retried",
    )

    def __init__(self) -> None:
        self.received = 0
        self.redelivered = 0
        self.handled = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one handler run that took ``seconds``."""
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    def add(self, other: TopicStats) -> None:
        """Add ``other``'s counts to these (to sum several dispatchers)."""
        self.received += other.received
        self.redelivered += other.redelivered
        self.handled += other.handled
        self.failed += other.failed
        self.retried += other.retried
        self.dead_lettered += other.dead_lettered
        self.buckets = [mine + theirs for mine, theirs in zip(self.buckets, other.buckets, strict=True)]
        self.duration_sum += other.duration_sum

    def __repr__(self) -> str:
        return (
            f"<TopicStats received={self.received} handled={self.handled} failed={self.failed} "
            f"retried={self.retried} dead_lettered={self.dead_lettered}>"
        )


class DispatchStats:
    """The ``TopicStats`` of each topic one dispatcher handles; shared by its incarnations (restarts).

    Args:
        topics: The topics known up front, so they are reported (at 0) before their first message.
    """

    def __init__(self, topics: Iterable[str] = ()) -> None:
        self.topics: dict[str, TopicStats] = {topic: TopicStats() for topic in topics}

    def topic(self, name: str) -> TopicStats:
        """The counters of topic ``name``, created on its first message."""
        stats = self.topics.get(name)
        if stats is None:
            stats = self.topics[name] = TopicStats()
        return stats

    def snapshot(self) -> dict[str, TopicStats]:
        """The counters by topic, as they are now; safe to call from any thread."""
        return self.topics.copy()  # one C call: a topic added meanwhile by the writer cannot break it


def total(stats: Iterable[DispatchStats]) -> dict[str, TopicStats]:
    """The counters of several dispatchers, summed by topic."""
    summed: dict[str, TopicStats] = {}
    for one in stats:
        for topic, counts in one.snapshot().items():
            summed.setdefault(topic, TopicStats()).add(counts)
    return summed
