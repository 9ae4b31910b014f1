"""The duplicate filter: same key, bounded memory, forgetting after the TTL."""

from uuid import uuid4

import pytest

from minos.networks.brokers import DuplicateFilter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_pair_seen_twice_is_a_duplicate_and_a_new_pair_is_not():
    duplicates = DuplicateFilter(clock=FakeClock())
    identifier = uuid4()
    assert not duplicates.check_and_remember("t", identifier)
    assert duplicates.check_and_remember("t", identifier)
    assert not duplicates.check_and_remember("other.topic", identifier)
    assert not duplicates.check_and_remember("t", uuid4())


def test_a_pair_is_forgotten_after_the_ttl():
    clock = FakeClock()
    duplicates = DuplicateFilter(ttl=10, clock=clock)
    identifier = uuid4()
    duplicates.check_and_remember("t", identifier)
    clock.now += 9.9
    assert duplicates.check_and_remember("t", identifier)
    clock.now += 0.2
    assert not duplicates.check_and_remember("t", identifier)


def test_expired_pairs_leave_memory_as_new_ones_arrive_and_younger_ones_stay():
    clock = FakeClock()
    duplicates = DuplicateFilter(ttl=10, clock=clock)
    old = [uuid4() for _ in range(3)]
    for identifier in old:
        duplicates.check_and_remember("t", identifier)
    clock.now += 5
    younger = uuid4()
    duplicates.check_and_remember("t", younger)
    clock.now += 5.5  # the first three expired, the younger one has 4.5 s left

    assert not duplicates.check_and_remember("t", uuid4())
    assert len(duplicates) == 2  # the younger pair and the new one
    assert duplicates.check_and_remember("t", younger)
    clock.now += 10
    assert not duplicates.check_and_remember("t", uuid4())
    assert len(duplicates) == 1


def test_memory_stays_bounded_by_forgetting_the_oldest_first():
    duplicates = DuplicateFilter(max_entries=3, clock=FakeClock())
    identifiers = [uuid4() for _ in range(5)]
    for identifier in identifiers:
        duplicates.check_and_remember("t", identifier)
    assert len(duplicates) == 3
    assert not duplicates.check_and_remember("t", identifiers[0])
    assert duplicates.check_and_remember("t", identifiers[4])


def test_bad_bounds_are_refused_with_the_values():
    with pytest.raises(ValueError, match=r"got 0 and 600\.0"):
        DuplicateFilter(max_entries=0)
