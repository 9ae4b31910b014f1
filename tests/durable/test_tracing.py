"""A message kept in the durable outbox keeps its trace context: sent again by the next run, it joins its trace."""

import sqlite3
from uuid import uuid4

from minos.common import Config
from minos.networks import (
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPort,
    BrokerPublisher,
    Request,
    enroute,
)

from ..spans import parent_of, recording


class TracedService:
    @enroute.broker.event("durable.traced")
    async def handle(self, request: Request) -> None:
        return None


async def test_a_message_resent_from_the_outbox_by_the_next_run_is_handled_in_its_original_trace(tmp_path):
    from minos.networks import tracing

    path = tmp_path / "service.sqlite"
    name = f"traced{uuid4().hex[:8]}"
    config = Config(
        {
            "name": name,
            "interfaces": {
                "broker": {
                    "endpoint": f"inproc://{name}",
                    "heartbeat_interval": 0.2,
                    "close_timeout": 2.0,
                    "durable": {"path": str(path)},
                }
            },
            "services": [TracedService],
        }
    )
    with recording() as spans:
        current = tracing.current()
        assert current is not None
        # The broker, and nobody handling: the message stays in the outbox when the publisher stops.
        async with BrokerPort.broker_only(config), BrokerPublisher.from_config(config) as first:
            with current.tracer.start_as_current_span("place order") as root:
                await first.send(BrokerMessageV1("durable.traced", BrokerMessageV1Payload({"order": 1})))
            assert first.outbox.pending == 1
        with sqlite3.connect(path) as db:
            ((body,),) = db.execute("SELECT body FROM minos_outbox").fetchall()
        assert b"traceparent" in body  # stored with the message, headers and all

        async with BrokerPort.from_config(config), BrokerPublisher.from_config(config) as second:
            assert second.outbox.resent == 1
            named = await spans.wait_named("durable.traced publish", "durable.traced process")
    publish, process = named["durable.traced publish"], named["durable.traced process"]
    assert parent_of(publish) == root.get_span_context().span_id
    assert parent_of(process) == publish.context.span_id  # the publish of the first run
    assert process.context.trace_id == root.get_span_context().trace_id
    assert process.attributes["messaging.destination.name"] == "durable.traced"
