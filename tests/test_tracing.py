"""One trace across services and processes: HTTP request -> command -> reply -> event -> a handler in another process.

The test process serves ``POST /orders`` and the command ``payment.charge`` on an embedded broker, and
traces into the SDK's in-memory exporter. The event ``order.paid`` is handled by a ``minos-networks run``
process whose service module sets a global SDK tracer provider (so tracing turns on by itself there) and
writes each finished span to stdout as a JSON line; the test matches its trace id and parent span id.
"""

import asyncio
import json
import os

import aiohttp
import pytest
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, set_span_in_context

from minos.common import Config
from minos.networks import (
    BrokerClientPool,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Strategy,
    Request,
    Response,
    enroute,
    tracing,
)
from minos.networks.system import ServiceRunner

from .conftest import CliProcess
from .spans import parent_of, recording

WAIT = 20.0  # seconds any single wait may take (a process starting on two busy cores)

AUDIT_MODULE = """
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from minos.networks import Request, enroute

provider = TracerProvider()
provider.add_span_processor(
    SimpleSpanProcessor(
        ConsoleSpanExporter(out=sys.stdout, formatter=lambda span: "span " + span.to_json(indent=None) + "\\n")
    )
)
trace.set_tracer_provider(provider)  # no 'tracing' key in the config: an SDK provider turns tracing on


class AuditService:
    @enroute.broker.event("order.paid")
    async def on_paid(self, request: Request) -> None:
        print("audited", (await request.content())["order"], flush=True)
"""

AUDIT_CONFIG = """
name: audit
interfaces:
  broker:
    endpoint: "{endpoint}"
    embedded: false
    heartbeat_interval: 0.2
    close_timeout: 1
services:
  - tracing_audit_service.AuditService
"""


@pytest.fixture
def workdir(short_dir):
    """A directory for the audit service's module, its config and the broker's socket (short enough for ipc)."""
    path = short_dir
    (path / "tracing_audit_service.py").write_text(AUDIT_MODULE)
    (path / "audit.yml").write_text(AUDIT_CONFIG.format(endpoint=f"ipc://{path / 'broker.sock'}"))
    return path


def services(pool):
    class OrdersService:
        @enroute.rest.command("/orders", "POST")
        async def create_order(self, request: Request) -> Response:
            order = await request.content()
            async with pool().acquire() as client:
                charge = BrokerMessageV1("payment.charge", BrokerMessageV1Payload({"order": order["id"]}))
                await client.send(charge)
                reply = await asyncio.wait_for(client.receive(), WAIT)
                paid = BrokerMessageV1(
                    "order.paid",
                    BrokerMessageV1Payload({"order": order["id"]}),
                    strategy=BrokerMessageV1Strategy.MULTICAST,
                )
                await client.publisher.send(paid)
            return Response({"order": order["id"], **reply.content, "reply_topic": client.topic})

    class PaymentsService:
        @enroute.broker.command("payment.charge")
        async def charge(self, request: Request) -> Response:
            return Response({"receipt": f"r-{(await request.content())['order']}"})

    return OrdersService, PaymentsService


def _hex(value: str) -> int:
    return int(value, 16)


async def test_an_http_request_its_command_reply_and_event_form_one_trace_across_two_processes(workdir):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MINOS_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
    pools = []
    orders, payments = services(lambda: pools[0])
    config = Config(
        {
            "name": "orders",
            "interfaces": {
                "broker": {
                    "endpoint": f"inproc://orders-{workdir.name}",
                    "bind": [f"ipc://{workdir / 'broker.sock'}"],
                    "heartbeat_interval": 0.2,
                    "close_timeout": 1,
                },
                "http": {"host": "127.0.0.1", "port": 0, "shutdown_timeout": 1},
            },
            "services": [orders, payments],
        }
    )
    pools.append(BrokerClientPool.from_config(config, maxsize=1))
    worker = None
    with recording() as spans:
        try:
            async with ServiceRunner.from_config(config) as runner, pools[0]:
                worker = CliProcess(
                    ["run", workdir / "audit.yml"], env=env, stderr_path=workdir / "audit.stderr"
                )
                await asyncio.to_thread(worker.wait_line, "minos-networks run: audit ready", WAIT)
                current = tracing.current()
                assert current is not None
                with current.tracer.start_as_current_span("checkout", kind=SpanKind.CLIENT) as root:
                    headers: dict[str, str] = {}
                    propagate.inject(headers, context=set_span_in_context(root))
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
                    session.post(f"{runner.http.url}/orders", json={"id": 7}, headers=headers) as response,
                ):
                    assert response.status == 200
                    body = await response.json()
                audited = await asyncio.to_thread(worker.wait_line, "audited", WAIT)
                line = await asyncio.to_thread(
                    worker.wait_line, "span ", WAIT, where=lambda line: '"order.paid process"' in line
                )
        finally:
            if worker is not None:
                worker.reap()
        assert body["receipt"] == "r-7"
        assert audited == "audited 7"
        named = await spans.wait_named(
            "POST /orders",
            "payment.charge publish",
            "payment.charge process",
            f"{body['reply_topic']} publish",
            "order.paid publish",
        )
    server = named["POST /orders"]
    command = named["payment.charge publish"]
    process = named["payment.charge process"]
    answer = named[f"{body['reply_topic']} publish"]
    event = named["order.paid publish"]
    trace_id = root.get_span_context().trace_id
    assert {span.context.trace_id for span in named.values()} == {trace_id}
    assert parent_of(server) == root.get_span_context().span_id  # the request's traceparent
    assert server.kind == SpanKind.SERVER
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/orders"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/orders"
    assert parent_of(command) == server.context.span_id
    assert parent_of(process) == command.context.span_id
    assert parent_of(answer) == process.context.span_id
    assert parent_of(event) == server.context.span_id
    assert event.attributes["messaging.minos.strategy"] == "MULTICAST"

    audit = json.loads(line.removeprefix("span "))  # finished and exported in the other process
    assert _hex(audit["context"]["trace_id"]) == trace_id
    assert _hex(audit["parent_id"]) == event.context.span_id
    assert audit["kind"] == "SpanKind.CONSUMER"
    assert audit["attributes"]["messaging.destination.name"] == "order.paid"
    assert audit["attributes"]["messaging.consumer.group.name"] == "audit"
    assert audit["attributes"]["messaging.message.id"] == event.attributes["messaging.message.id"]


OFF_SCRIPT = """
import asyncio
import sys

from minos.common import Config
from minos.networks import BrokerClient, BrokerDispatcher, BrokerHandler, BrokerMessageV1, Response


async def echo(request):
    return Response(await request.content())


async def main():
    config = Config({"name": "off", "interfaces": {"broker": {"transport": "memory", "endpoint": "memory-off"}}})
    handler = BrokerHandler.from_config(config, BrokerDispatcher({"echo": echo}))
    await handler.start()
    async with BrokerClient.from_config(config) as client:
        await client.send(BrokerMessageV1("echo"))
        reply = await client.receive()
    await handler.stop()
    print(type(handler.sink).__name__, sorted(reply.headers), sorted(m for m in sys.modules if "opentelemetry" in m))


asyncio.run(main())
"""


def test_off_by_default_a_request_and_its_reply_import_no_opentelemetry_and_carry_no_trace_headers(tmp_path):
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith(("MINOS_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", OFF_SCRIPT], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    assert done.stdout.strip() == "DispatchSink [] []"


def test_the_tracing_key_turns_tracing_on_without_an_sdk_and_off_despite_one():
    from opentelemetry.sdk.trace import TracerProvider

    try:
        tracing.configure(None)
        assert tracing.current() is None  # the API's proxy provider: no SDK here
        ServiceRunner.from_config(Config({"name": "traced", "tracing": True}))
        on = tracing.current()
        assert on is not None
        parent = on.extract({"traceparent": f"00-{0xABC:032x}-{0xDEF:016x}-01"})
        span = on.start("work", {}, parent=parent)  # not recorded without an SDK, but the context goes on
        assert not span.is_recording()
        headers = on.inject({}, span)
        assert headers["traceparent"] == f"00-{0xABC:032x}-{0xDEF:016x}-01"
        tracing.configure(False, tracer_provider=TracerProvider())
        assert tracing.current() is None
        ServiceRunner.from_config(Config({"name": "untraced", "tracing": False}))
        assert tracing.current() is None
    finally:
        tracing.configure(None)
