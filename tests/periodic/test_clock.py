"""FakeClock: time that moves when code sleeps on it (autojump) or when the test advances it."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from minos.networks.periodic import FakeClock

START = datetime(2024, 1, 1, 12, tzinfo=UTC)


async def test_with_autojump_a_sleep_moves_the_time_at_once():
    clock = FakeClock(START)
    await clock.sleep(90)
    await clock.sleep(-5)  # a delay already past counts as none
    assert clock() == clock.now == START + timedelta(seconds=90)
    assert clock.slept == 90
    assert clock.sleeping == 0


async def test_without_autojump_a_sleep_waits_until_the_time_is_advanced_past_its_deadline():
    clock = FakeClock(START, autojump=False)
    sleeper = asyncio.ensure_future(clock.sleep(60))
    await clock.wait_sleeping(1)
    assert clock.advance(59) == START + timedelta(seconds=59)
    await asyncio.wait({sleeper}, timeout=0)
    assert not sleeper.done()
    clock.advance(1)
    await asyncio.wait_for(sleeper, 1)
    assert clock.sleeping == 0


async def test_a_cancelled_sleeper_stops_counting_as_sleeping():
    clock = FakeClock(START, autojump=False)
    sleeper = asyncio.ensure_future(clock.sleep(60))
    await clock.wait_sleeping(1)
    sleeper.cancel()
    await asyncio.gather(sleeper, return_exceptions=True)
    assert clock.sleeping == 0


async def test_waiting_for_sleepers_that_never_come_times_out():
    clock = FakeClock(START, autojump=False)
    with pytest.raises(TimeoutError, match=r"0 sleepers after 0\.01 s, not 1"):
        await clock.wait_sleeping(1, timeout=0.01)


def test_time_never_goes_back_and_a_naive_start_is_utc():
    clock = FakeClock(datetime(2024, 1, 1))
    assert clock().tzinfo is UTC
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    assert repr(clock) == "FakeClock(2024-01-01 00:00:00+0000, autojump=True)"


async def test_a_crontab_of_the_clock_sleeps_on_it():
    clock = FakeClock(START)
    assert await clock.crontab("*/5 * * * *").sleep_until_next() == START + timedelta(minutes=5)
    assert clock() == START + timedelta(minutes=5)
