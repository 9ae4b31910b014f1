"""PeriodicTask: one actor per task, runs on a fake clock, never overlapping, failures counted, bounded stop."""

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from minos.networks.periodic import (
    CronTab,
    FakeClock,
    PeriodicTask,
    ScheduledRequest,
    ScheduledRequestContent,
    ScheduledResponseException,
)

START = datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)
WAIT = 10  # seconds any single wait in these tests may take before the test fails
SIMULATION_WAIT = 45  # seconds for 10,000 simulated minutes: about 4 s of CPU, many times that on busy cores


class Recorder:
    """A periodic handler that records when each run was due and signals the test's loop after ``count`` runs.

    It runs in the task actor's loop; the test awaits :attr:`done` in its own.
    """

    def __init__(self, count: int, clock: FakeClock | None = None, *, work: float = 0.0) -> None:
        self.count = count
        self.clock = clock
        self.work = work  # simulated seconds each run takes
        self.seen: list[datetime] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()

    async def __call__(self, request: ScheduledRequest) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.seen.append((await request.content()).scheduled_at)
            if self.clock is not None and self.work:
                self.clock.advance(self.work)
        finally:
            self.in_flight -= 1
        if len(self.seen) == self.count:
            self.loop.call_soon_threadsafe(_settle, self.done)


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def stopping_sleep(clock: FakeClock, recorder: Recorder):
    """The clock's sleep, except that time stands still once the recorder has seen enough runs."""

    async def sleep(seconds: float) -> None:
        if len(recorder.seen) >= recorder.count:
            await asyncio.Event().wait()  # parked until the task is stopped
        await clock.sleep(seconds)

    return sleep


async def run_until_done(task: PeriodicTask, recorder: Recorder, wait: float = WAIT) -> None:
    await task.start()
    try:
        await asyncio.wait_for(asyncio.shield(recorder.done), wait)
    finally:
        await task.stop()


async def test_a_minutely_task_fires_exactly_once_per_slot_over_ten_thousand_simulated_minutes():
    clock = FakeClock(START)
    recorder = Recorder(10_000)
    task = PeriodicTask("* * * * *", recorder, clock=clock, sleep=stopping_sleep(clock, recorder))
    await run_until_done(task, recorder, SIMULATION_WAIT)
    first = datetime(2024, 1, 1, 12, 1, tzinfo=UTC)
    assert recorder.seen == [first + timedelta(minutes=n) for n in range(10_000)]
    assert recorder.most_in_flight == 1
    assert (task.runs, task.failures, task.skipped) == (10_000, 0, 0)


@pytest.mark.parametrize(
    ("pattern", "step"),
    [
        ("*/10 * * * * *", timedelta(seconds=10)),
        ("0 */5 * * * *", timedelta(minutes=5)),  # the seed's "every 5 minutes"
        ("30 * * * * *", timedelta(minutes=1)),
    ],
)
async def test_a_seconds_first_pattern_fires_on_its_seconds(pattern, step):
    clock = FakeClock(START)
    recorder = Recorder(100)
    task = PeriodicTask(pattern, recorder, clock=clock, sleep=stopping_sleep(clock, recorder))
    await run_until_done(task, recorder)
    first = CronTab(pattern).get_next(START)
    assert recorder.seen == [first + step * n for n in range(100)]


async def test_reboot_runs_once_as_soon_as_the_task_starts():
    clock = FakeClock(START)
    recorder = Recorder(1)
    task = PeriodicTask("@reboot", recorder, clock=clock, sleep=clock.sleep)
    await run_until_done(task, recorder)
    assert recorder.seen == [START]
    assert task.runs == 1


async def test_reboot_ends_its_schedule_after_its_one_run():
    clock = FakeClock(START)
    seen = []
    task = PeriodicTask("@reboot", seen.append, clock=clock, sleep=clock.sleep)
    await asyncio.wait_for(task.run_forever(), WAIT)
    assert seen == [ScheduledRequest(START)]


async def test_a_run_slower_than_its_period_never_overlaps_and_skips_the_missed_firings(caplog):
    clock = FakeClock(START)
    recorder = Recorder(5, clock, work=150)  # each run takes two and a half periods
    task = PeriodicTask(
        "* * * * *", recorder, clock=clock, sleep=stopping_sleep(clock, recorder), name="slow"
    )
    with caplog.at_level(logging.WARNING, logger="minos.networks.periodic.task"):
        await run_until_done(task, recorder)
    # due at 12:01, done at 12:03:30: 12:02 and 12:03 came meanwhile and are skipped; next due at 12:04
    first = datetime(2024, 1, 1, 12, 1, tzinfo=UTC)
    assert recorder.seen == [first + timedelta(minutes=3 * n) for n in range(5)]
    assert recorder.most_in_flight == 1
    assert task.skipped >= 8
    warnings = [record.getMessage() for record in caplog.records if "skipped" in record.getMessage()]
    assert len(warnings) >= 4
    assert "'slow'" in warnings[0]
    assert "past 2 later firing(s)" in warnings[0]


async def test_run_once_skips_a_call_that_comes_while_a_run_is_in_progress(caplog):
    release = asyncio.Event()
    entered = asyncio.Event()
    calls = []

    async def handler(request):
        calls.append(request)
        entered.set()
        await release.wait()

    task = PeriodicTask("* * * * *", handler)
    first = asyncio.ensure_future(task.run_once(START))
    await asyncio.wait_for(entered.wait(), WAIT)
    assert task.running
    with caplog.at_level(logging.WARNING, logger="minos.networks.periodic.task"):
        assert await task.run_once(START + timedelta(minutes=1)) is False
    release.set()
    assert await asyncio.wait_for(first, WAIT) is True
    assert not task.running
    assert calls == [ScheduledRequest(START)]
    assert (task.runs, task.skipped) == (1, 1)
    assert "previous run is still going" in caplog.text


async def test_run_once_gives_the_handler_when_the_run_was_due_defaulting_to_the_clock():
    clock = FakeClock(START)
    seen = []
    task = PeriodicTask("@hourly", lambda request: seen.append(request), clock=clock)
    await task.run_once()
    await task.run_once(datetime(2030, 5, 1, tzinfo=UTC))
    assert seen == [ScheduledRequest(START), ScheduledRequest(datetime(2030, 5, 1, tzinfo=UTC))]


async def test_a_failing_run_is_logged_and_counted_and_the_schedule_goes_on(caplog):
    clock = FakeClock(START)
    recorder = Recorder(3)

    async def handler(request):
        await recorder(request)
        if len(recorder.seen) == 1:
            raise RuntimeError("disk full")
        if len(recorder.seen) == 2:
            raise ScheduledResponseException("nothing to clean", status=409)

    task = PeriodicTask(
        "* * * * *", handler, clock=clock, sleep=stopping_sleep(clock, recorder), name="clean"
    )
    with caplog.at_level(logging.WARNING, logger="minos.networks.periodic.task"):
        await run_until_done(task, recorder)
    assert len(recorder.seen) == 3
    assert (task.runs, task.failures) == (3, 2)
    assert isinstance(task.last_error, ScheduledResponseException)
    failed = [record for record in caplog.records if "failed" in record.getMessage()]
    assert failed[0].exc_info is not None
    assert "disk full" in str(failed[0].exc_info[1])
    assert "status 409: nothing to clean" in failed[1].getMessage()
    assert failed[1].exc_info is None


async def test_stop_lets_a_run_in_progress_finish():
    entered = threading.Event()
    release = threading.Event()
    finished = []

    async def handler(request):
        entered.set()
        await asyncio.to_thread(release.wait, WAIT)
        finished.append(request)

    task = PeriodicTask("@reboot", handler, stop_timeout=WAIT)
    await task.start()
    assert await asyncio.to_thread(entered.wait, WAIT)
    stopping = asyncio.ensure_future(task.stop())
    release.set()
    await asyncio.wait_for(stopping, WAIT)
    assert len(finished) == 1
    assert not task.started


async def test_stop_cancels_a_run_that_outlasts_the_stop_timeout(caplog):
    entered = threading.Event()
    cancelled = threading.Event()

    async def handler(request):
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = PeriodicTask("@reboot", handler, stop_timeout=0.05, name="stuck")
    await task.start()
    assert await asyncio.to_thread(entered.wait, WAIT)
    with caplog.at_level(logging.WARNING, logger="minos.networks.periodic.task"):
        await asyncio.wait_for(task.stop(), WAIT)
    assert cancelled.is_set()
    assert "did not end within 0.05 s and is cancelled" in caplog.text


async def test_the_task_runs_in_an_actor_of_its_own_and_reports_started_until_stopped():
    clock = FakeClock(START)
    recorder = Recorder(1)
    task = PeriodicTask("* * * * *", recorder, clock=clock, sleep=stopping_sleep(clock, recorder), name="own")
    assert not task.started
    await task.start()
    await task.start()  # idempotent
    try:
        assert task.started
        assert "minos-own" in {thread.name for thread in threading.enumerate()}
        await asyncio.wait_for(asyncio.shield(recorder.done), WAIT)
        assert task.health()[0] is True
    finally:
        await task.stop()
    await task.stop()  # idempotent
    assert not task.started
    assert task.health() == (False, "own: not running (1 runs, 0 failed, 0 skipped)")


async def test_a_task_whose_schedule_fails_is_restarted_by_its_supervisor(caplog):
    clock = FakeClock(START)
    recorder = Recorder(2)
    failures = []

    async def flaky_sleep(seconds):
        if not failures:
            failures.append(seconds)
            raise OSError("timer broke")
        await stopping_sleep(clock, recorder)(seconds)

    task = PeriodicTask("* * * * *", recorder, clock=clock, sleep=flaky_sleep, name="flaky")
    with caplog.at_level(logging.ERROR, logger="minos.networks.periodic.task"):
        await run_until_done(task, recorder)
    assert len(recorder.seen) == 2
    assert "its schedule failed: OSError('timer broke')" in caplog.text


def test_a_crontab_given_with_a_clock_is_rebuilt_on_that_clock():
    clock = FakeClock(START)
    task = PeriodicTask(CronTab("0 */5 * * * *"), print, clock=clock)
    assert task.crontab == CronTab("*/5 * * * *")
    assert task.crontab.clock is clock
    assert task.crontab.get_next() == datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
    assert PeriodicTask(CronTab("@reboot"), print, clock=clock).crontab.repetitions == 1


def test_a_task_needs_a_callable_and_a_valid_pattern():
    with pytest.raises(TypeError, match="a periodic task runs a callable"):
        PeriodicTask("* * * * *", "not callable")
    with pytest.raises(ValueError, match="invalid crontab pattern"):
        PeriodicTask("every minute", print)


async def test_a_scheduled_request_carries_when_the_run_was_due_and_no_user():
    request = ScheduledRequest(START)
    assert await request.content() == ScheduledRequestContent(START)
    assert request.scheduled_at == START
    assert request.user is None
    assert request.has_content
    assert not request.has_params
    assert request == ScheduledRequest(START) != ScheduledRequest(START + timedelta(seconds=1))
    assert hash(request) == hash(ScheduledRequest(START))
    assert repr(request) == f"ScheduledRequest({START!r})"
