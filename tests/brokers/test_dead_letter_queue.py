"""Dead letters: parsed from their messages, listed without being consumed, replayed exactly (API and CLI)."""

import asyncio
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
import yaml

from minos.common import Config
from minos.networks import (
    BrokerDispatcher,
    BrokerHandler,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPublisher,
    BrokerRequest,
    FrameCodec,
    Request,
    enroute,
)
from minos.networks.brokers import BrokerPort, DeadLetter, DeadLetterFormatError, DeadLetterQueue

WAIT = 10  # seconds any single wait in these tests may take before the test fails
MAX_ATTEMPTS = 2
EMPTY_AFTER = 0.3  # seconds without a dead letter after which a queue counts as exhausted


RETRIES = {"max_attempts": MAX_ATTEMPTS, "initial_delay": 0, "max_delay": 0}  # retries wait 0 s here


@pytest.fixture(params=["memory", "zmq", "nats"])
def config(request, make_config):
    return make_config(request.param, retries=RETRIES)


def message(topic, content=None, **kwargs):
    return BrokerMessageV1(topic, BrokerMessageV1Payload(content), **kwargs)


class Boom(Exception):
    """What the broken handler raises until it is fixed."""


class Service:
    """A handler that fails until ``fixed``; tells the test's loop what it handled."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.fixed = False
        self.failures: Counter[object] = Counter()
        self.handled: list[tuple[UUID, object]] = []
        self._handled_event = asyncio.Event()

    async def __call__(self, request: Request) -> None:  # runs in the handler actor's loop
        content = await request.content()
        if not self.fixed:
            self.failures[content] += 1
            raise Boom(content)
        assert isinstance(request, BrokerRequest)
        self.handled.append((request.raw.identifier, content))
        self.loop.call_soon_threadsafe(self._handled_event.set)

    async def wait_handled(self, count):
        while len(self.handled) < count:
            self._handled_event.clear()
            await asyncio.wait_for(self._handled_event.wait(), WAIT)


async def dead_letter(config, service, contents):
    """Publish ``contents`` to a handler that fails: each ends up a dead letter. Returns the messages sent."""
    handler = BrokerHandler.from_config(config, BrokerDispatcher({"job": service}))
    sent = [message("job", content) for content in contents]
    await handler.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            for item in sent:
                await publisher.send(item)
        queue = DeadLetterQueue.from_config(config, idle_timeout=WAIT)
        letters = await queue.list(limit=len(sent))  # returns once they are all dead letters
    finally:
        await handler.stop()
    assert sorted(service.failures.values()) == [MAX_ATTEMPTS] * len(sent)  # the faults happened
    assert {letter.identifier for letter in letters} == {item.identifier for item in sent}
    return sent


def test_a_dead_letter_round_trips_through_its_message_and_keeps_the_original_bytes():
    original = message("order.pay", {"id": 3}, reply_topic="caller-replies")
    body = FrameCodec().encode(original)[1]
    letter = DeadLetter(
        "order.pay", original.identifier, "Internal error ...: Boom", 3, datetime.now(UTC), body
    )
    carried = FrameCodec().decode(FrameCodec().encode(letter.to_message("orders.dead-letters")))
    assert DeadLetter.from_message(carried) == letter
    assert letter.original() == original
    assert str(original.identifier) in letter.describe()


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("not a dict", "content is str"),
        ({"topic": "t"}, "'identifier' should be UUID"),
        (
            {
                "topic": "t",
                "identifier": uuid4(),
                "error": "e",
                "attempts": True,
                "failed_at": datetime.now(UTC),
                "message": b"",
            },
            "'attempts' should be int",
        ),
    ],
)
def test_a_message_that_is_not_a_dead_letter_is_refused_with_the_field_at_fault(content, complaint):
    with pytest.raises(DeadLetterFormatError, match=complaint):
        DeadLetter.from_message(message("x.dead-letters", content))


async def test_listing_does_not_consume_the_dead_letters(config, broker):
    service = Service()
    sent = await dead_letter(config, service, ["a", "b"])
    queue = DeadLetterQueue.from_config(config, idle_timeout=EMPTY_AFTER)
    first = await queue.list()
    second = await queue.list()
    assert [letter.identifier for letter in first] == [item.identifier for item in sent]
    assert second == first


async def test_a_replayed_dead_letter_is_handled_once_the_handler_is_fixed_and_leaves_the_queue(
    config, broker
):
    service = Service()
    sent = await dead_letter(config, service, ["a", "b"])
    service.fixed = True
    handler = BrokerHandler.from_config(config, BrokerDispatcher({"job": service}))
    await handler.start()
    try:
        queue = DeadLetterQueue.from_config(config, idle_timeout=WAIT)
        assert await queue.replay([sent[1].identifier]) == 1
        await service.wait_handled(1)
        assert service.handled == [(sent[1].identifier, "b")]  # the very message, same identifier
        remaining = await DeadLetterQueue.from_config(config, idle_timeout=EMPTY_AFTER).list()
        assert [letter.identifier for letter in remaining] == [sent[0].identifier]
        everything = DeadLetterQueue.from_config(config, idle_timeout=1.0)
        assert await everything.replay() == 1  # all there is: the one left
        await service.wait_handled(2)
    finally:
        await handler.stop()
    assert sorted(str(content) for _, content in service.handled) == ["a", "b"]
    assert await DeadLetterQueue.from_config(config, idle_timeout=EMPTY_AFTER).list() == []


async def test_the_same_process_handles_a_replay_even_though_it_saw_the_message_before(config, broker):
    service = Service()
    handler = BrokerHandler.from_config(config, BrokerDispatcher({"job": service}))
    await handler.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            sent = message("job", "again")
            await publisher.send(sent)
        await DeadLetterQueue.from_config(config, idle_timeout=WAIT).list(limit=1)
        assert service.failures["again"] == MAX_ATTEMPTS
        service.fixed = True
        assert await DeadLetterQueue.from_config(config, idle_timeout=WAIT).replay([sent.identifier]) == 1
        await service.wait_handled(1)  # not dropped by the duplicate filter that remembered it
    finally:
        await handler.stop()
    assert service.handled == [(sent.identifier, "again")]


async def cli(*args):
    """Run ``minos-networks`` in a process of its own, off the event loop."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "minos.networks", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_lists_and_replays_dead_letters_on_a_broker_other_processes_reach(
    short_dir, tmp_path, make_config
):
    socket = f"ipc://{short_dir / 'broker.sock'}"
    name = f"svc{uuid4().hex[:8]}"
    config = make_config("zmq", name, bind=[socket], retries=RETRIES)
    file = tmp_path / "service.yml"
    remote = {"endpoint": socket, "embedded": False, "heartbeat_interval": 0.2, "close_timeout": 2.0}
    file.write_text(yaml.safe_dump({"name": name, "interfaces": {"broker": remote}}))
    port = BrokerPort.broker_only(config)
    await port.start()
    try:
        service = Service()
        sent = await dead_letter(config, service, ["x", "y"])

        listed = await cli("dead-letters", "list", str(file), "--idle-timeout", "2")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert [line.split("\t")[0] for line in lines] == [str(item.identifier) for item in sent]
        assert all("\tjob\tattempts=2\t" in line and "Boom" in line for line in lines)

        missing = await cli("dead-letters", "replay", str(file), "--id", str(uuid4()), "--idle-timeout", "1")
        assert missing.returncode == 1
        assert "only 0 of 1" in missing.stderr

        service.fixed = True
        handler = BrokerHandler.from_config(config, BrokerDispatcher({"job": service}))
        await handler.start()
        try:
            replayed = await cli("dead-letters", "replay", str(file), "--id", str(sent[0].identifier))
            assert replayed.returncode == 0, replayed.stderr
            assert "replayed 1 dead letters" in replayed.stdout
            await service.wait_handled(1)
        finally:
            await handler.stop()
        assert service.handled == [(sent[0].identifier, "x")]
        remaining = await DeadLetterQueue.from_config(config, idle_timeout=EMPTY_AFTER).list()
        assert [letter.identifier for letter in remaining] == [sent[1].identifier]
    finally:
        await port.stop()


async def test_the_cli_exits_one_on_a_bad_config_and_two_on_bad_usage(tmp_path):
    bad = await cli("dead-letters", "list", str(tmp_path / "missing.yml"))
    assert bad.returncode == 1
    assert "missing.yml" in bad.stderr
    embedded = tmp_path / "embedded.yml"
    embedded.write_text(yaml.safe_dump({"name": "svc"}))
    local = await cli("dead-letters", "list", str(embedded))
    assert local.returncode == 1
    assert "broker process" in local.stderr
    usage = await cli("dead-letters", "replay")
    assert usage.returncode == 2
    not_uuid = await cli("dead-letters", "replay", str(embedded), "--id", "nope")
    assert not_uuid.returncode == 2


class AlwaysFails:
    @enroute.broker.command("orders.charge")
    async def charge(self, request: Request) -> None:
        raise RuntimeError("the card processor is down")


async def test_a_service_run_by_broker_port_retries_then_dead_letters_from_its_config(config, broker):
    broker_settings = {**config.get_mapping("interfaces.broker"), "embedded": False}  # the fixture runs it
    service = Config(
        {"name": config.name, "interfaces": {"broker": broker_settings}, "services": [AlwaysFails]}
    )
    async with BrokerPort.from_config(service) as port, BrokerPublisher.from_config(service) as publisher:
        sent = message("orders.charge", {"amount": 3})
        await publisher.send(sent)
        letters = await asyncio.wait_for(DeadLetterQueue.from_config(service).list(limit=1), WAIT)
    assert [letter.identifier for letter in letters] == [sent.identifier]
    assert letters[0].attempts == MAX_ATTEMPTS
    assert "RuntimeError" in letters[0].error
    assert port.handles  # the dispatcher that failed was the port's own
