"""PeriodicTaskScheduler and PeriodicPort: a service's periodic handlers from its Config, supervised, in health."""

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from minos.common import Config
from minos.networks import enroute
from minos.networks.periodic import FakeClock, PeriodicPort, PeriodicTask, PeriodicTaskScheduler
from minos.networks.system import HealthRegistry

START = datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)
WAIT = 10


class Seen:
    """Collects what the handlers saw, from their actors' loops, and wakes the test when enough came."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.items: list[tuple[str, datetime]] = []
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()

    def add(self, name: str, at: datetime) -> None:
        self.items.append((name, at))
        if len(self.items) == self.count:
            self.loop.call_soon_threadsafe(lambda: self.done.done() or self.done.set_result(None))

    def of(self, name: str) -> list[datetime]:
        return [at for who, at in self.items if who == name]


class CleanupService:
    seen: Seen

    @enroute.periodic.event("0 */5 * * * *")  # every 5 minutes, seconds first
    async def every_five_minutes(self, request):
        self.seen.add("five", (await request.content()).scheduled_at)

    @enroute.periodic.event("@hourly")
    def hourly(self, request):  # a sync handler
        self.seen.add("hourly", request.scheduled_at)

    @enroute.broker.command("not.periodic")
    async def command(self, request): ...


def service_config(seen: Seen, **periodic) -> Config:
    service = type("Cleanup", (CleanupService,), {"seen": seen})
    return Config(
        {"name": f"svc{uuid4().hex[:8]}", "interfaces": {"periodic": periodic}, "services": [service]}
    )


def parked_sleep(clock: FakeClock, until: datetime):
    async def sleep(seconds: float) -> None:
        if clock() + timedelta(seconds=seconds) > until:
            await asyncio.Event().wait()  # time stops at `until`, until the task is stopped
        await clock.sleep(seconds)

    return sleep


async def test_the_port_runs_each_periodic_handler_of_the_config_on_its_schedule():
    seen = Seen(26)  # 24 five-minute runs and 2 hourly runs in the two hours after START
    clock = FakeClock(START, autojump=False)  # one clock for two tasks: the test moves it
    registry = HealthRegistry()
    port = PeriodicPort.from_config(service_config(seen), clock=clock, sleep=clock.sleep, health=registry)
    assert len(port.scheduler.tasks) == 2
    async with port:
        for _ in range(24):
            await clock.wait_sleeping(2)
            clock.advance(300)
        await asyncio.wait_for(asyncio.shield(seen.done), WAIT)
        assert registry.report()["periodic"] == (True, "2 periodic tasks running")
    assert seen.of("five") == [
        datetime(2024, 1, 1, 12, 5, tzinfo=UTC) + timedelta(minutes=5 * n) for n in range(24)
    ]
    assert seen.of("hourly") == [datetime(2024, 1, 1, 13, tzinfo=UTC), datetime(2024, 1, 1, 14, tzinfo=UTC)]
    assert registry.report() == {}
    assert not port.running


async def test_the_stop_timeout_of_runs_comes_from_the_periodic_interface():
    config = service_config(Seen(1), stop_timeout=0.5)
    scheduler = PeriodicTaskScheduler.from_config(config)
    assert {task.stop_timeout for task in scheduler.tasks} == {0.5}
    assert scheduler.name == f"{config.name}-periodic"
    assert sorted(task.crontab.pattern for task in scheduler.tasks) == ["0 */5 * * * *", "@hourly"]


async def test_a_task_whose_actor_keeps_failing_makes_the_port_unhealthy():
    clock = FakeClock(START)

    go = threading.Event()

    async def broken_sleep(seconds):
        await asyncio.to_thread(go.wait, WAIT)  # fail once the test watches
        raise OSError("no timer")

    registry = HealthRegistry()
    healthy_task = PeriodicTask("@daily", print, clock=clock, sleep=parked_sleep(clock, START), name="fine")
    broken = PeriodicTask("* * * * *", print, clock=clock, sleep=broken_sleep, name="broken")
    port = PeriodicPort(PeriodicTaskScheduler([healthy_task, broken], name="flaky"), health=registry)
    async with port:
        # the supervisor restarts the broken task's actor until it gives up and stops every task
        (fine_thread,) = [thread for thread in threading.enumerate() if thread.name == "minos-flaky-1"]
        go.set()
        await asyncio.to_thread(fine_thread.join, WAIT)
        assert not fine_thread.is_alive()
        healthy, detail = registry.report()["periodic"]
    assert not healthy
    assert "broken" in detail
    assert "fine" in detail


async def test_a_task_of_a_scheduler_is_started_and_stopped_by_the_scheduler_only():
    clock = FakeClock(START)
    task = PeriodicTask("@daily", print, clock=clock, sleep=parked_sleep(clock, START), name="daily")
    async with PeriodicTaskScheduler([task], name="owner") as scheduler:
        assert scheduler.running
        assert task.started
        with pytest.raises(RuntimeError, match="run by a PeriodicTaskScheduler"):
            await task.start()
        with pytest.raises(RuntimeError, match="run by a PeriodicTaskScheduler"):
            await task.stop()
    assert not task.started
    assert scheduler.health() == (False, "the periodic tasks are not started")


def test_a_task_cannot_be_given_twice_to_a_scheduler():
    task = PeriodicTask("@daily", print)
    with pytest.raises(ValueError, match="given twice"):
        PeriodicTaskScheduler([task, task])


async def test_a_port_registers_its_health_check_in_the_registry_it_is_given():
    registry = HealthRegistry()
    port = PeriodicPort(PeriodicTaskScheduler([], name="empty"), health=registry)
    async with port:
        assert registry.checks()["periodic"] is port
        assert registry.report()["periodic"] == (True, "0 periodic tasks running")
    assert port not in registry.checks().values()


async def test_a_port_given_no_registry_runs_and_reports_its_health_to_whoever_asks():
    port = PeriodicPort(PeriodicTaskScheduler([], name="alone"))
    async with port:
        assert port.health() == (True, "0 periodic tasks running")
    assert not port.running
