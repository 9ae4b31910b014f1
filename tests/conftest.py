"""Fixtures for the whole suite."""

import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Writes a module with the given source under a fresh unique name and returns that name.

    For tests that need import paths (services, middleware listed in a Config).
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(source: str) -> str:
        name = f"fixture_module_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)
