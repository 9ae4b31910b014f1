"""The broker's live view (``minos-networks broker --stats``): one line of rates and depths per interval."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import IO, Final

from ..transports import BrokerServer, BrokerStats

__all__ = ["STATS_PREFIX", "print_stats", "stats_line"]

STATS_PREFIX: Final = "minos-networks broker stats:"
"""Starts every line of the live view; then ``key=value`` words, so scripts can read it."""


def stats_line(
    before: BrokerStats, after: BrokerStats, seconds: float, depths: Sequence[tuple[str, str, int]] = ()
) -> str:
    """One line of the live view: what happened in ``seconds`` between two snapshots, then totals.

    Words: ``published/s``, ``delivered/s`` and ``acked/s`` (rates over the interval); ``held`` (messages
    queued or in flight), ``queued`` (waiting in queues, not in flight), ``deepest`` (the fullest queue as
    ``topic@group:count``, or ``-``), ``peers``; then the totals since the start: ``published``,
    ``delivered``, ``acked``, ``redelivered``, ``refused`` (publishes refused while full), ``lost_peers``,
    ``rejected`` (malformed frames), ``unknown_peer`` (frames from peers the broker does not know),
    ``cut_off`` (peers cut off for malformed frames), ``refused_handshakes`` (CURVE).

    Args:
        before: The previous snapshot.
        after: The snapshot now.
        seconds: The time between the two.
        depths: ``(topic, group, queued)`` of each queue now (``BrokerServer.queue_depths``).
    """
    span = max(seconds, 1e-9)

    def rate(old: int, new: int) -> str:
        return f"{(new - old) / span:.1f}"

    deepest = max(depths, key=lambda depth: depth[2], default=None)
    words = [
        f"published/s={rate(before.published, after.published)}",
        f"delivered/s={rate(before.delivered, after.delivered)}",
        f"acked/s={rate(before.acknowledged, after.acknowledged)}",
        f"held={after.size}",
        f"queued={sum(depth[2] for depth in depths)}",
        f"deepest={f'{deepest[0]}@{deepest[1]}:{deepest[2]}' if deepest is not None and deepest[2] else '-'}",
        f"peers={after.peers}",
        f"published={after.published}",
        f"delivered={after.delivered}",
        f"acked={after.acknowledged}",
        f"redelivered={after.redelivered}",
        f"refused={after.refused}",
        f"lost_peers={after.lost_peers}",
        f"rejected={after.malformed}",
        f"unknown_peer={after.ignored}",
        f"cut_off={after.cut_off_peers}",
        f"refused_handshakes={after.refused_handshakes}",
    ]
    return f"{STATS_PREFIX} {' '.join(words)}"


async def print_stats(server: BrokerServer, interval: float, stream: IO[str] | None = None) -> None:
    """Print :func:`stats_line` every ``interval`` seconds until cancelled.

    Run it in the broker's own loop: the queue depths are read there, between two batches.
    """
    out = stream if stream is not None else sys.stdout
    loop = asyncio.get_running_loop()
    before, since = server.stats, loop.time()
    next_at = since + interval
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))  # a timer, not a synchronisation
        now = loop.time()
        after = server.stats
        print(stats_line(before, after, now - since, server.queue_depths()), file=out, flush=True)
        before, since = after, now
        next_at = max(next_at + interval, now)
