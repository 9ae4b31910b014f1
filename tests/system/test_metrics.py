"""``GET /metrics`` on a running service: a real HTTP server, real broker handlers, a real client.

Each wait rests on a reply: a dispatcher counts a message before it publishes the message's reply, so
once the client has every reply, the counters a scrape reads include every message.
"""

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minos.common import Config, ConfigError
from minos.networks import BrokerClient, BrokerMessageV1, BrokerMessageV1Payload, Request, Response, enroute
from minos.networks.system import ServiceRunner, check_config
from minos.networks.system.metrics import MESSAGE_COUNTERS

TIMEOUT = 10.0
MESSAGES = 25


class LedgerService:
    @enroute.broker.command("ledger.add")
    async def add(self, request: Request) -> Response:
        return Response({"added": (await request.content())["amount"]})

    @enroute.broker.command("ledger.break")
    async def broken(self, request: Request) -> Response:
        raise RuntimeError("the ledger is on fire")

    @enroute.rest.query("/ledger", method="GET")
    async def ledger(self, request: Request) -> Response:
        return Response({"ok": True})


def service_config(name: str, *, metrics: object = True) -> Config:
    return Config(
        {
            "name": name,
            "interfaces": {
                "broker": {
                    "endpoint": f"inproc://{name}",
                    "heartbeat_interval": 0.2,
                    "close_timeout": 1,
                    "retries": {"max_attempts": 2, "initial_delay": 0.001, "max_delay": 0.001},
                },
                "http": {"port": 0, "shutdown_timeout": 1, "metrics": metrics},
            },
            "services": [LedgerService],
        }
    )


async def scrape(client: aiohttp.ClientSession, runner: ServiceRunner) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    assert runner.http is not None
    async with client.get(runner.http.url / "metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def topic_count(samples, name: str, topic: str) -> float:
    return samples[(f"minos_messages_{name}_total", (("topic", topic),))]


async def exchange(config: Config, topic: str, count: int) -> list[int]:
    """Send ``count`` commands to ``topic`` and return the statuses of their replies, once all came back."""
    async with BrokerClient.from_config(config) as client:
        for amount in range(count):
            await client.send(BrokerMessageV1(topic, BrokerMessageV1Payload({"amount": amount})))
        return [int(reply.status) async for reply in client.receive_many(count=count, timeout=TIMEOUT)]


@pytest.fixture
async def served():
    config = service_config("metrics-ledger")
    runner = ServiceRunner.from_config(config)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client:
        await runner.start()
        try:
            yield config, runner, client
        finally:
            assert await runner.stop() == []


async def test_the_per_topic_counters_grow_by_the_messages_handled_between_two_scrapes(served):
    config, runner, client = served
    before = await scrape(client, runner)
    for name, _ in MESSAGE_COUNTERS:  # every topic is reported from the start, at 0
        assert topic_count(before, name, "ledger.add") == 0

    statuses = await exchange(config, "ledger.add", MESSAGES)

    assert statuses == [200] * MESSAGES
    after = await scrape(client, runner)
    assert topic_count(after, "received", "ledger.add") == MESSAGES
    assert topic_count(after, "handled", "ledger.add") == MESSAGES
    for name in ("failed", "retried", "dead_lettered"):
        assert topic_count(after, name, "ledger.add") == 0
    histogram = ("topic", "ledger.add")
    assert after[("minos_handler_duration_seconds_count", (histogram,))] == MESSAGES
    assert after[("minos_handler_duration_seconds_bucket", (("le", "+Inf"), histogram))] == MESSAGES
    assert after[("minos_handler_duration_seconds_sum", (histogram,))] > 0
    # The embedded broker saw the commands and their replies go through, and acknowledged all of them.
    assert (
        after[("minos_broker_published_total", ())]
        >= before[("minos_broker_published_total", ())] + 2 * MESSAGES
    )
    assert after[("minos_broker_acknowledged_total", ())] >= 2 * MESSAGES
    assert after[("minos_broker_peers", ())] >= 1  # the dispatcher (the client has left)
    assert after[("minos_broker_rejected_frames_total", (("reason", "malformed"),))] == 0


async def test_a_failing_handler_shows_as_failed_retried_and_dead_lettered(served):
    config, runner, client = served

    statuses = await exchange(config, "ledger.break", 3)

    assert statuses == [500] * 3
    after = await scrape(client, runner)
    assert topic_count(after, "received", "ledger.break") == 3
    assert topic_count(after, "failed", "ledger.break") == 6  # two attempts each
    assert topic_count(after, "retried", "ledger.break") == 3
    assert topic_count(after, "dead_lettered", "ledger.break") == 3
    assert topic_count(after, "handled", "ledger.break") == 0


async def test_depths_and_mailboxes_are_reported(served):
    _, runner, client = served
    samples = await scrape(client, runner)
    dispatcher = "metrics-ledger-broker-port-dispatcher-1"
    for state in ("waiting", "running", "retrying"):
        assert samples[("minos_dispatcher_backlog", (("dispatcher", dispatcher), ("state", state)))] == 0
    assert ("minos_peer_queued", (("kind", "publish"), ("peer", dispatcher))) in samples
    actors = {labels[0][1] for name, labels in samples if name == "minos_actor_mailbox_messages"}
    assert dispatcher in actors
    assert "metrics-ledger-http-port-server" in actors
    assert ("minos_broker_messages", ()) in samples


async def test_metrics_are_off_unless_the_config_turns_them_on():
    config = service_config("metrics-off", metrics=False)
    runner = ServiceRunner.from_config(config)
    await runner.start()
    try:
        assert runner.http is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client:
            async with client.get(runner.http.url / "metrics") as response:
                assert response.status == 404
            async with client.get(runner.http.url / "ledger") as response:
                assert response.status == 200
    finally:
        assert await runner.stop() == []


def test_a_metrics_key_that_is_not_a_boolean_is_a_config_error_naming_it():
    problems = check_config(service_config("metrics-bad", metrics="sometimes"))
    assert len(problems) == 1
    assert problems[0].key == "interfaces.http.metrics"
    with pytest.raises(ConfigError, match=r"interfaces\.http\.metrics"):
        ServiceRunner.from_config(service_config("metrics-bad", metrics="sometimes"))


def test_a_handler_serving_get_metrics_clashes_with_the_metrics_endpoint(make_module):
    module = make_module(
        """
        from minos.networks import Response, enroute

        class Mine:
            @enroute.rest.query("/metrics", method="GET")
            async def metrics(self, request):
                return Response("mine")
        """
    )
    config = Config(
        {
            "name": "clash",
            "interfaces": {"http": {"port": 0, "metrics": True}},
            "services": [f"{module}.Mine"],
        }
    )
    problems = check_config(config)
    assert [problem.key for problem in problems] == ["interfaces.http"]
    assert "GET /metrics is served by a handler and by interfaces.http.metrics: true" in str(problems[0])


async def test_two_services_in_one_process_keep_their_metrics_apart():
    first, second = (
        ServiceRunner.from_config(service_config("metrics-a")),
        ServiceRunner.from_config(service_config("metrics-b")),
    )
    await first.start()
    try:
        await second.start()
        try:
            await exchange(service_config("metrics-a"), "ledger.add", 2)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as client:
                a, b = await asyncio.gather(scrape(client, first), scrape(client, second))
            assert topic_count(a, "handled", "ledger.add") == 2
            assert topic_count(b, "handled", "ledger.add") == 0
        finally:
            assert await second.stop() == []
    finally:
        assert await first.stop() == []
