"""A periodic run is the root span of what it does; a failed run's span says so."""

from datetime import UTC, datetime

from opentelemetry.trace import StatusCode

from minos.networks.periodic import FakeClock, PeriodicTask, ScheduledRequest
from minos.networks.protocol import BrokerMessageV1

from ..spans import parent_of, recording

START = datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)


async def test_a_periodic_run_is_a_root_span_and_what_it_publishes_is_its_child():
    from minos.networks import tracing

    async def tick(request: ScheduledRequest) -> None:
        current = tracing.current()
        assert current is not None
        with current.publishing(BrokerMessageV1("ticked")):  # what BrokerPublisher.send does
            pass

    with recording() as spans:
        task = PeriodicTask("* * * * *", tick, clock=FakeClock(START), name="ticker")
        assert await task.run_once(START) is True
        named = await spans.wait_named("periodic ticker", "ticked publish")
    run, publish = named["periodic ticker"], named["ticked publish"]
    assert run.parent is None
    assert run.attributes["minos.periodic.task"] == "ticker"
    assert run.attributes["minos.periodic.scheduled_at"] == str(START)
    assert parent_of(publish) == run.context.span_id


async def test_a_failed_periodic_run_has_an_error_status_with_the_exception():
    async def broken(request: ScheduledRequest) -> None:
        raise RuntimeError("disk full")

    with recording() as spans:
        task = PeriodicTask("* * * * *", broken, clock=FakeClock(START), name="broken")
        assert await task.run_once(START) is True
        run = (await spans.wait_named("periodic broken"))["periodic broken"]
    assert task.failures == 1
    assert run.status.status_code == StatusCode.ERROR
    assert [event.name for event in run.events] == ["exception"]
    assert run.events[0].attributes["exception.message"] == "disk full"
