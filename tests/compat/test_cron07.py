"""Item 14 of issue 17: 0.7's seven-field cron form is accepted; six fields keep our seconds-first reading."""

from datetime import UTC, datetime
from uuid import uuid4

from croniter import croniter

from minos.common import Config
from minos.networks import CronTab, HealthRegistry, PeriodicPort, enroute
from minos.networks.periodic import FakeClock

NOW = datetime(2026, 12, 7, 10, 2, 30, tzinfo=UTC)


def test_item_14_seven_fields_read_second_minute_hour_day_month_weekday_year_as_in_0_7():
    every_five_minutes = CronTab("0 */5 * * * * *", lambda: NOW)
    assert every_five_minutes.get_next() == datetime(2026, 12, 7, 10, 5, tzinfo=UTC)
    assert (
        every_five_minutes == CronTab("0 */5 * * * *") == CronTab("*/5 * * * *")
    )  # any year: the same schedule
    assert every_five_minutes.pattern == "0 */5 * * * * *"
    in_2030 = CronTab("30 15 9 1 1 * 2030", lambda: NOW)
    assert in_2030.get_next() == datetime(2030, 1, 1, 9, 15, 30, tzinfo=UTC)
    assert in_2030 != CronTab("30 15 9 1 1 *")
    assert CronTab(croniter("30 15 9 1 1 * 2030", second_at_beginning=True)).pattern == "30 15 9 1 1 * 2030"
    assert enroute.periodic.event("0 0 * * * * *").crontab == CronTab("@hourly")


def test_item_14_six_fields_keep_the_seconds_first_reading_which_0_7_read_as_minute_to_year():
    # crontab 0.23 (minos 0.7) ran "0 */5 * * * *" every 5 hours (minute 0 of hours 0, 5, ...); we, every 5 minutes.
    assert CronTab("0 */5 * * * *", lambda: NOW).get_next() == datetime(2026, 12, 7, 10, 5, tzinfo=UTC)


async def test_item_14_the_0_7_service_sweeps_on_its_seven_field_schedule(service07):
    clock = FakeClock(datetime(2026, 12, 7, 10, 59, tzinfo=UTC), autojump=False)
    config = Config({"name": f"orders{uuid4().hex[:8]}", "services": [service07.OrderEventService]})
    async with PeriodicPort.from_config(config, clock=clock, sleep=clock.sleep, health=HealthRegistry()):
        await clock.wait_sleeping(1)  # waits for 11:00:00
        assert service07.SWEEPS == []
        clock.advance(60)
        await clock.wait_sleeping(1)  # the run is over: it waits for 12:00:00
        assert service07.SWEEPS == ["swept"]
