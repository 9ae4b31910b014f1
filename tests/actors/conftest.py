"""Fixtures for the actor runtime tests: a fake clock and a check that no actor outlives its test."""

import threading

import pykka
import pytest


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._now = now

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(autouse=True)
def no_actor_outlives_its_test():
    """Fail a test that leaves an actor registered; the runtime must clean up without stop_all()."""
    yield
    left = pykka.ActorRegistry.get_all()
    for ref in left:
        ref.stop(block=False)
    if left:
        pytest.fail(f"actors still registered after the test: {left}")
