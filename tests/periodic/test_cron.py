"""CronTab: 5 fields, 6 with seconds first, aliases and @reboot, on a fake clock that tests advance."""

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from croniter import croniter

from minos.networks.periodic import CronTab

START = datetime(2024, 1, 1, 12, 1, 30, tzinfo=UTC)  # a Monday


class FakeClock:
    """A clock that only moves when the code under test sleeps on it (or a test advances it)."""

    def __init__(self, now: datetime = START, *, early: float = 0.0) -> None:
        self.now = now
        self.early = early  # how much sooner than asked the first sleep wakes up, as asyncio's may
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=max(seconds - self.early, 0))
        self.early = 0.0

    def crontab(self, pattern) -> CronTab:
        return CronTab(pattern, self, sleep=self.sleep)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*/5 * * * *", datetime(2024, 1, 1, 12, 5, tzinfo=UTC)),
        ("0 */5 * * * *", datetime(2024, 1, 1, 12, 5, tzinfo=UTC)),  # the seed's "every 5 minutes"
        ("*/10 * * * * *", datetime(2024, 1, 1, 12, 1, 40, tzinfo=UTC)),  # seconds come first
        ("15 0 13 * * *", datetime(2024, 1, 1, 13, 0, 15, tzinfo=UTC)),
        ("  0   0 * * 0 ", datetime(2024, 1, 7, tzinfo=UTC)),
        ("@hourly", datetime(2024, 1, 1, 13, tzinfo=UTC)),
        ("@daily", datetime(2024, 1, 2, tzinfo=UTC)),
        ("@midnight", datetime(2024, 1, 2, tzinfo=UTC)),
        ("@weekly", datetime(2024, 1, 7, tzinfo=UTC)),
        ("@monthly", datetime(2024, 2, 1, tzinfo=UTC)),
        ("@yearly", datetime(2025, 1, 1, tzinfo=UTC)),
        ("@ANNUALLY", datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_the_next_firing_and_the_delay_until_it_follow_the_pattern(pattern, expected):
    crontab = CronTab(pattern, FakeClock())
    assert crontab.get_next() == expected
    assert crontab.get_delay_until_next() == (expected - START).total_seconds()
    assert crontab.get_delay_until_next(START) == (expected - START).total_seconds()
    assert crontab.repetitions == math.inf


def test_a_firing_time_is_never_the_current_one():
    crontab = CronTab("*/5 * * * *")
    assert crontab.get_delay_until_next(datetime(2024, 1, 1, 12, 5, tzinfo=UTC)) == 300


def test_a_naive_time_is_read_as_utc():
    crontab = CronTab("0 * * * *")
    assert crontab.get_delay_until_next(datetime(2024, 1, 1, 12, 30)) == 1800


def test_patterns_are_read_in_the_timezone_of_the_clock():
    madrid = timezone(timedelta(hours=1))
    crontab = CronTab("0 9 * * *", lambda: datetime(2024, 1, 1, 8, 30, tzinfo=madrid))
    assert crontab.get_next() == datetime(2024, 1, 1, 9, tzinfo=madrid)
    assert crontab.get_delay_until_next() == 1800


def test_the_default_clock_is_the_current_utc_time():
    delay = CronTab("* * * * * *").get_delay_until_next()
    assert 0 < delay <= 1


def test_reboot_fires_once_straight_away():
    crontab = CronTab("@reboot", FakeClock())
    assert crontab.repetitions == 1
    assert crontab.get_delay_until_next() == 0
    assert crontab.get_next() == START
    assert crontab.impl is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "it has 3 fields"),
        ("0 0 * * * * * *", "it has 8 fields"),
        ("0 0 * * * * 2020", "it never matches a date"),  # a year of the past
        ("", "it has 0 fields"),
        ("@often", "unknown alias"),
        ("every day", "it has 2 fields"),
        ("a b c d e", "invalid crontab pattern"),
        ("0 0 30 2 *", "it never matches a date"),
    ],
)
def test_an_invalid_pattern_raises_value_error_quoting_it(pattern, reason):
    with pytest.raises(ValueError, match="invalid crontab pattern") as caught:
        CronTab(pattern)
    assert repr(pattern) in str(caught.value)
    assert reason in str(caught.value)


def test_a_pattern_of_another_type_is_a_type_error():
    with pytest.raises(TypeError, match="a crontab pattern must be a str"):
        CronTab(300)


def test_a_croniter_instance_is_used_as_it_is():
    crontab = CronTab(croniter("*/10 * * * * *", second_at_beginning=True), FakeClock())
    assert crontab.get_next() == datetime(2024, 1, 1, 12, 1, 40, tzinfo=UTC)
    assert crontab.pattern == "*/10 * * * * *"
    assert crontab == CronTab("*/10 * * * * *")
    assert isinstance(crontab.impl, croniter)


def test_crontabs_reading_the_same_are_equal_whatever_their_clock():
    assert CronTab("@hourly") == CronTab("0 * * * *") == CronTab("0 0 * * * *")
    assert hash(CronTab("@hourly")) == hash(CronTab("0  *  * * *", FakeClock()))
    assert CronTab("@reboot") == CronTab("@REBOOT")
    assert CronTab("@hourly") != CronTab("@daily")
    assert CronTab("@reboot") != CronTab("* * * * *")
    assert CronTab("@hourly") != "@hourly"
    assert repr(CronTab("0 */5 * * * *")) == "CronTab('0 */5 * * * *')"


async def test_sleep_until_next_sleeps_exactly_until_the_next_firing():
    clock = FakeClock()
    crontab = clock.crontab("*/5 * * * *")
    assert await crontab.sleep_until_next() == datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
    assert clock.sleeps == [210]
    assert clock.now == datetime(2024, 1, 1, 12, 5, tzinfo=UTC)


async def test_sleep_until_next_never_returns_before_the_firing_when_the_sleep_wakes_early():
    clock = FakeClock(early=0.001)
    crontab = clock.crontab("*/5 * * * *")
    target = await crontab.sleep_until_next()
    assert clock.now >= target == datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
    assert clock.sleeps == [210, pytest.approx(0.001)]
    # and the firing is not seen a second time
    assert await crontab.sleep_until_next() == datetime(2024, 1, 1, 12, 10, tzinfo=UTC)


async def test_iterating_yields_each_firing_in_turn():
    clock = FakeClock()
    firings = []
    async for firing in clock.crontab("0 */5 * * * *"):
        firings.append(firing)
        if len(firings) == 3:
            break
    assert firings == [datetime(2024, 1, 1, 12, minute, tzinfo=UTC) for minute in (5, 10, 15)]


async def test_a_run_longer_than_the_period_skips_the_missed_firings_instead_of_overlapping():
    clock = FakeClock()
    firings = []
    async for firing in clock.crontab("*/5 * * * *"):
        firings.append(firing)
        clock.now += timedelta(minutes=7)  # the work outlasts the period
        if len(firings) == 2:
            break
    assert firings == [datetime(2024, 1, 1, 12, 5, tzinfo=UTC), datetime(2024, 1, 1, 12, 15, tzinfo=UTC)]


async def test_iterating_over_reboot_yields_once_and_stops():
    clock = FakeClock()
    firings = [firing async for firing in clock.crontab("@reboot")]
    assert firings == [START]
    assert clock.sleeps == [0]
