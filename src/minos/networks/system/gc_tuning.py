"""tune_gc: make Python's cyclic garbage collector cheaper for a process that moves many messages.

Every message allocates a handful of container objects (futures, frames, requests); with CPython's
default thresholds a young collection runs every 700 allocations and a full one every 70,000, and a
full collection walks every object the process holds: its modules, its configuration and every message
queued in it. Profiles of the benchmark scenarios (``benchmarks/README.md``) put 9 % to 29 % of the busy
time of a process inside the collector. Collecting less often, and hiding what was alive at start-up from
it, cuts that; messages hold no reference cycles, so nothing waits longer to be freed.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_gc"]

YOUNG_THRESHOLD = 50_000
"""Allocations between two young collections (CPython's default is 700)."""


def tune_gc(young_threshold: int = YOUNG_THRESHOLD, *, freeze: bool = True) -> tuple[int, int, int]:
    """Collect less often, and (with ``freeze``) leave what is alive now out of every later collection.

    The ``minos-networks`` commands that run a service or a broker call it at start-up; a process that
    embeds minos.networks may call it once its set-up is done. It changes process-wide settings.

    Args:
        young_threshold: Allocations between two young collections; the older generations keep their
            multipliers, so full collections get rarer by the same factor.
        freeze: Move every object alive now to the permanent generation (``gc.freeze()``): module and
            set-up objects are then never walked again (nor collected, should they become cyclic garbage).

    Returns:
        The thresholds before the call, for ``gc.set_threshold(*previous)``.

    Raises:
        ValueError: ``young_threshold`` is not positive.
    """
    if young_threshold < 1:
        raise ValueError(f"young_threshold must be positive, got {young_threshold!r}")
    previous = gc.get_threshold()
    gc.set_threshold(young_threshold, previous[1], previous[2])
    if freeze:
        gc.collect()  # what is garbage now goes now, not into the permanent generation
        gc.freeze()
    return previous
