"""Fixtures for the whole suite."""

import threading
import time

import pytest

# The prefix every thread started by minos.networks carries (minos.networks.actors.THREAD_PREFIX); spelled
# out here so this check works even when the package fails to import.
MINOS_THREAD_PREFIX = "minos-"
THREAD_END_GRACE = 2.0  # seconds a thread that is already ending gets to finish before it counts as leaked


def _minos_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith(MINOS_THREAD_PREFIX)}


@pytest.fixture(autouse=True)
def no_minos_thread_outlives_its_test():
    """Fail a test that leaves a ``minos-`` thread running (joined with a bounded wait first)."""
    before = _minos_threads()
    yield
    deadline = time.monotonic() + THREAD_END_GRACE
    leaked = []
    for thread in sorted(_minos_threads() - before, key=lambda thread: thread.name):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread.name)
    if leaked:
        pytest.fail(
            f"threads still running {THREAD_END_GRACE} s after the test: {leaked}; stop what started them"
        )
