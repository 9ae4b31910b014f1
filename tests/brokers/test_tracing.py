"""Traces through the broker: a command, its reply, an event its handler publishes, retries and dead letters."""

import asyncio

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from minos.networks import (
    BrokerClient,
    BrokerDispatcher,
    BrokerHandler,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPublisher,
    Request,
    Response,
)

from ..spans import context_of, ids, parent_of, recording

WAIT = 10
RETRIES = {"max_attempts": 3, "initial_delay": 0, "max_delay": 0}


@pytest.fixture(params=["memory", "zmq", "nats"])
def config(request, make_config):
    return make_config(request.param, retries=RETRIES)


@pytest.fixture
def spans():
    with recording() as spans:
        yield spans


class Boom(Exception):
    """What the failing handlers raise."""


async def test_a_command_its_reply_and_the_event_its_handler_publishes_form_one_trace(config, broker, spans):
    loop = asyncio.get_running_loop()
    seen = asyncio.Event()
    received: list[BrokerMessageV1] = []
    publisher = BrokerPublisher.from_config(config, name="events", durable=False)

    async def charge(request: Request) -> Response:  # in the handler actor's loop, another thread
        await publisher.send(BrokerMessageV1("order.paid", BrokerMessageV1Payload({"order": 1})))
        return Response({"receipt": "r-1"})

    async def paid(request: Request) -> None:
        received.append(request.raw)
        loop.call_soon_threadsafe(seen.set)

    commands = BrokerHandler.from_config(config, BrokerDispatcher({"payment.charge": charge}))
    events = BrokerHandler.from_config(config, BrokerDispatcher({"order.paid": paid}), group="audit")
    await publisher.start()
    await commands.start()
    await events.start()
    tracer = spans_tracer()
    try:
        async with BrokerClient.from_config(config) as client:
            with tracer.start_as_current_span("checkout") as root:
                await client.send(BrokerMessageV1("payment.charge", BrokerMessageV1Payload({"order": 1})))
            reply = await asyncio.wait_for(client.receive(), WAIT)
            await asyncio.wait_for(seen.wait(), WAIT)
    finally:
        await events.stop()
        await commands.stop()
        await publisher.stop()
    assert reply.content == {"receipt": "r-1"}
    named = await spans.wait_named(
        "checkout",
        "payment.charge publish",
        "payment.charge process",
        "order.paid publish",
        "order.paid process",
        f"{client.topic} publish",
    )
    trace_id = root.get_span_context().trace_id
    assert {span.context.trace_id for span in named.values()} == {trace_id}
    command = named["payment.charge publish"]
    process = named["payment.charge process"]
    event = named["order.paid publish"]
    handled = named["order.paid process"]
    answer = named[f"{client.topic} publish"]
    assert parent_of(command) == root.get_span_context().span_id
    assert parent_of(process) == command.context.span_id  # the command's traceparent
    assert parent_of(event) == process.context.span_id  # published inside the handler, in another thread
    assert parent_of(handled) == event.context.span_id
    assert parent_of(answer) == process.context.span_id
    assert ids(reply.headers["traceparent"]) == context_of(answer)
    assert ids(received[0].headers["traceparent"]) == context_of(event)

    assert (command.kind, process.kind, answer.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
    )
    assert command.attributes["messaging.system"] == "minos"
    assert command.attributes["messaging.operation"] == "publish"
    assert command.attributes["messaging.destination.name"] == "payment.charge"
    assert command.attributes["messaging.message.id"] == str(reply.identifier)
    assert process.attributes["messaging.operation"] == "process"
    assert process.attributes["messaging.consumer.group.name"] == commands.subscriber.group
    assert handled.attributes["messaging.consumer.group.name"] == "audit"
    assert process.attributes["messaging.minos.retry.count"] == 0
    assert process.attributes["messaging.minos.redelivered"] is False
    assert process.attributes["messaging.minos.reply.status"] == 200
    assert answer.attributes["messaging.minos.reply.status"] == 200
    assert answer.attributes["messaging.destination.name"] == client.topic


def spans_tracer():
    from minos.networks import tracing

    current = tracing.current()
    assert current is not None
    return current.tracer


async def test_a_retried_message_shows_each_attempt_and_its_retries_under_the_one_publish(
    config, broker, spans
):
    attempts = 0

    async def flaky(request: Request) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise Boom("not yet")

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"flaky": flaky}))
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            await client.send(BrokerMessageV1("flaky", BrokerMessageV1Payload("job")))
            reply = await asyncio.wait_for(client.receive(), WAIT)
    finally:
        await handler.stop()
    assert reply.ok
    finished = await asyncio.to_thread(
        spans.wait_for, lambda found: sum(span.name == "flaky process" for span in found) == 3, WAIT
    )
    publish = next(span for span in finished if span.name == "flaky publish")
    tries = sorted(
        (span for span in finished if span.name == "flaky process"),
        key=lambda span: span.attributes["messaging.minos.attempt"],
    )
    retries = [span for span in finished if span.name == "flaky retry"]
    assert [span.attributes["messaging.minos.retry.count"] for span in tries] == [0, 1, 2]
    assert [parent_of(span) for span in tries] == [publish.context.span_id] * 3
    assert [span.status.status_code for span in tries] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert [span.attributes["messaging.minos.reply.status"] for span in tries] == [500, 500, 200]
    assert sorted(parent_of(span) for span in retries) == sorted(span.context.span_id for span in tries[:2])
    assert {span.context.trace_id for span in (publish, *tries, *retries)} == {publish.context.trace_id}


async def test_a_dead_lettered_message_shows_its_dead_letter_under_its_last_attempt(config, broker, spans):
    async def broken(request: Request) -> None:
        raise Boom("never")

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"broken": broken}))
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            request = BrokerMessageV1("broken", BrokerMessageV1Payload("job"))
            await client.send(request)
            reply = await asyncio.wait_for(client.receive(), WAIT)
    finally:
        await handler.stop()
    assert reply.status == 500
    dead_letters = handler.dead_letter_topic
    named = await spans.wait_named(f"{dead_letters} publish", f"{client.topic} publish")
    finished = spans.finished
    last = max(
        (span for span in finished if span.name == "broken process"),
        key=lambda span: span.attributes["messaging.minos.attempt"],
    )
    letter = named[f"{dead_letters} publish"]
    assert last.attributes["messaging.minos.attempt"] == 3
    assert parent_of(letter) == last.context.span_id
    assert letter.attributes["messaging.minos.dead_letter"] is True
    assert letter.attributes["messaging.minos.dead_letter.topic"] == "broken"
    assert letter.attributes["messaging.minos.dead_letter.message.id"] == str(request.identifier)
    assert letter.attributes["messaging.minos.attempt"] == 3
    assert "Boom" in letter.attributes["messaging.minos.error"]
    assert named[f"{client.topic} publish"].attributes["messaging.minos.reply.status"] == 500


async def test_tracing_off_sends_no_trace_headers_and_builds_plain_sinks(config, broker):
    async def echo(request: Request) -> Response:
        return Response(dict(request.headers))

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"echo": echo}))
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            await client.send(BrokerMessageV1("echo", BrokerMessageV1Payload("job")))
            reply = await asyncio.wait_for(client.receive(), WAIT)
    finally:
        await handler.stop()
    assert reply.content == {}
    assert "traceparent" not in reply.headers
    assert type(handler.sink).__name__ == "DispatchSink"
