"""Failing handlers: retries with backoff and jitter, then a dead letter; other messages keep flowing."""

import asyncio
from collections import Counter
from random import Random

import pytest

from minos.common import Config, ConfigError
from minos.networks import (
    BrokerClient,
    BrokerDispatcher,
    BrokerHandler,
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerMessageV1Status,
    BrokerPublisher,
    BrokerSubscriber,
    Request,
    ResponseException,
)
from minos.networks.brokers import DeadLetterQueue, RetryPolicy, broker_settings

WAIT = 10  # seconds any single wait in these tests may take before the test fails
MAX_ATTEMPTS = 3


RETRIES = {"max_attempts": MAX_ATTEMPTS, "initial_delay": 0, "max_delay": 0}  # retries wait 0 s here


@pytest.fixture(params=["memory", "zmq", "nats"])
def config(request, make_config):
    return make_config(request.param, retries=RETRIES)


def message(topic, content=None, **kwargs):
    return BrokerMessageV1(topic, BrokerMessageV1Payload(content), **kwargs)


class Boom(Exception):
    """What the failing handlers of these tests raise."""


def test_the_backoff_doubles_from_the_initial_delay_up_to_the_cap_with_jitter_between_half_and_full():
    policy = RetryPolicy(max_attempts=10, initial_delay=0.1, max_delay=1.0, random=Random(42))
    expected_random = Random(42)
    bases = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    delays = [policy.delay(attempt) for attempt in range(1, 7)]
    assert delays == pytest.approx([base * expected_random.uniform(0.5, 1.0) for base in bases])
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= delay <= base
    assert policy.delay(100_000) <= 1.0  # no overflow far past the cap


def test_a_retry_policy_refuses_impossible_values():
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(initial_delay=-1)


def test_the_config_gives_the_retries_and_the_dead_letter_topic_with_their_defaults():
    defaults = broker_settings(Config({"name": "orders"}))
    assert (defaults.retries.max_attempts, defaults.retries.initial_delay, defaults.retries.max_delay) == (
        3,
        0.1,
        5.0,
    )
    assert defaults.dead_letter_topic == "orders.dead-letters"
    custom = broker_settings(
        Config(
            {
                "name": "orders",
                "interfaces": {
                    "broker": {
                        "group": "billing",
                        "retries": {"max_attempts": 1, "initial_delay": 0.5, "max_delay": 2},
                    }
                },
            }
        )
    )
    assert (custom.retries.max_attempts, custom.retries.initial_delay, custom.retries.max_delay) == (
        1,
        0.5,
        2.0,
    )
    assert custom.dead_letter_topic == "billing.dead-letters"
    with pytest.raises(ConfigError, match="retries"):
        broker_settings(
            Config({"name": "orders", "interfaces": {"broker": {"retries": {"max_attempts": 0}}}})
        )


class Calls:
    """Counts handler calls by content, in the handler actor's loop, and tells the test's loop about them."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.calls: Counter[object] = Counter()
        self.failures: Counter[object] = Counter()
        self.done: Counter[object] = Counter()  # answered without raising
        self._waiters = []

    def record(self, content, *, fail):
        self.calls[content] += 1
        if fail:
            self.failures[content] += 1
        else:
            self.done[content] += 1
        self.loop.call_soon_threadsafe(self._check)
        if fail:
            raise Boom(f"failed on {content!r}")

    def _check(self):
        for predicate, event in self._waiters:
            if predicate():
                event.set()

    async def wait(self, predicate):
        event = asyncio.Event()
        self._waiters.append((predicate, event))
        self._check()
        await asyncio.wait_for(event.wait(), WAIT)


async def test_a_handler_that_fails_twice_then_succeeds_is_retried_and_handled_once(config, broker):
    calls = Calls()

    async def flaky(request: Request) -> None:  # runs in the handler actor's loop
        content = await request.content()
        calls.record(content, fail=calls.calls[content] < 2)

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"flaky": flaky}))
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            await client.send(message("flaky", "job"))
            reply = await asyncio.wait_for(client.receive(), WAIT)
    finally:
        await handler.stop()
    assert reply.status == BrokerMessageV1Status.SUCCESS
    assert calls.failures["job"] == 2  # the fault really happened, twice
    assert calls.calls["job"] == 3
    assert calls.done["job"] == 1
    sink = handler.sink
    assert sink is not None
    assert (sink.handled, sink.retried, sink.dead_lettered) == (1, 2, 0)


async def test_an_answer_with_an_error_status_is_not_retried(config, broker):
    calls = Calls()

    async def refuse(request: Request) -> None:
        calls.record("refused", fail=False)
        raise ResponseException("not yours", status=403)

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"refuse": refuse}))
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            await client.send(message("refuse", None))
            reply = await asyncio.wait_for(client.receive(), WAIT)
    finally:
        await handler.stop()
    assert reply.status == 403
    assert calls.calls["refused"] == 1
    assert handler.sink is not None
    assert (handler.sink.handled, handler.sink.retried, handler.sink.dead_lettered) == (1, 0, 0)


async def test_a_handler_that_always_fails_is_dead_lettered_with_its_error_and_attempt_count(config, broker):
    calls = Calls()

    async def broken(request: Request) -> None:
        calls.record((await request.content())["order"], fail=True)

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"broken": broken}))
    await handler.start()
    try:
        async with BrokerClient.from_config(config) as client:
            request = BrokerMessageV1("broken", BrokerMessageV1Payload({"order": 7}, {"trace": "abc"}))
            await client.send(request)
            reply = await asyncio.wait_for(client.receive(), WAIT)
    finally:
        await handler.stop()
    assert reply.status == BrokerMessageV1Status.SYSTEM_ERROR
    assert reply.identifier == request.identifier
    assert calls.failures == {7: MAX_ATTEMPTS}  # the fault really happened, on every attempt
    assert handler.sink is not None
    assert (handler.sink.handled, handler.sink.retried, handler.sink.dead_lettered) == (0, 2, 1)

    letters = await DeadLetterQueue.from_config(config, idle_timeout=WAIT).list(limit=1)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.topic == "broken"
    assert letter.identifier == request.identifier
    assert letter.attempts == MAX_ATTEMPTS
    assert letter.error == reply.content
    assert "Boom" in letter.error
    assert "Traceback" not in letter.error
    assert letter.failed_at.tzinfo is not None
    original = letter.original()
    assert original.identifier == request.identifier
    assert original.content == {"order": 7}
    assert original.headers["trace"] == "abc"
    assert original.reply_topic == client.topic


async def test_other_messages_keep_flowing_while_one_waits_for_its_retry(config, broker):
    calls = Calls()

    async def work(request: Request) -> None:
        content = await request.content()
        calls.record(content, fail=content == "failing" and calls.calls[content] == 0)

    # One slot, and a retry far in the future: if the waiting message held the slot, nothing else could run.
    slow_retry = RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_delay=3600, max_delay=3600)
    first = BrokerHandler(
        BrokerDispatcher({"work": work}),
        BrokerSubscriber.from_config(config, ["work"]),
        1,
        retries=slow_retry,
        dead_letter_topic=broker_settings(config).dead_letter_topic,
    )
    await first.start()
    try:
        async with BrokerPublisher.from_config(config) as publisher:
            await publisher.send(message("work", "failing"))
            await calls.wait(lambda: calls.failures["failing"] == 1)
            for content in ("a", "b", "c"):
                await publisher.send(message("work", content))
            await calls.wait(lambda: all(calls.done[c] == 1 for c in "abc"))
            assert calls.calls["failing"] == 1  # still waiting for its retry, unacknowledged
            assert first.sink is not None
            assert first.sink.retried == 1
    finally:
        await first.stop()
    # Stopping gave the waiting message back to the broker: the next member of the group handles it.
    second = BrokerHandler.from_config(config, BrokerDispatcher({"work": work}))
    await second.start()
    try:
        await calls.wait(lambda: calls.done["failing"] == 1)
    finally:
        await second.stop()
    assert calls.calls["failing"] == 2
    assert sum(calls.done.values()) == 4


async def test_poison_messages_are_retried_then_dead_lettered_while_the_rest_are_all_handled(config, broker):
    count = 1500
    poison = {i for i in range(count) if i % 100 == 37}  # 1%
    assert len(poison) == 15
    calls = Calls()

    async def handle(request: Request) -> None:
        content = await request.content()
        calls.record(content, fail=content in poison or content == "poison-request")

    handler = BrokerHandler.from_config(config, BrokerDispatcher({"job": handle}))
    await handler.start()
    try:
        async with (
            BrokerClient.from_config(config) as client,
            BrokerPublisher.from_config(config) as publisher,
        ):
            sent = {}
            for i in range(count):
                sent[i] = message("job", i)
            await asyncio.gather(*(publisher.send(m) for m in sent.values()))
            poison_request = message("job", "poison-request")
            await client.send(poison_request)
            reply = await asyncio.wait_for(client.receive(), WAIT)
            healthy = count - len(poison)
            await calls.wait(lambda: sum(calls.done.values()) == healthy)
            letters = await DeadLetterQueue.from_config(config, idle_timeout=WAIT).list(limit=len(poison) + 1)
    finally:
        await handler.stop()

    # The faults really happened: each poison message raised on every one of its attempts.
    assert {i: calls.failures[i] for i in poison} == dict.fromkeys(poison, MAX_ATTEMPTS)
    assert calls.failures["poison-request"] == MAX_ATTEMPTS
    # Every other message was handled exactly once.
    assert {i: calls.calls[i] for i in range(count) if i not in poison} == dict.fromkeys(
        set(range(count)) - poison, 1
    )
    # The sender of a poison request got the 500 reply.
    assert reply.status == BrokerMessageV1Status.SYSTEM_ERROR
    assert reply.identifier == poison_request.identifier
    # Each poison message was dead-lettered exactly once, with its attempts and its error.
    expected = {sent[i].identifier: i for i in poison} | {poison_request.identifier: "poison-request"}
    assert sorted(str(letter.identifier) for letter in letters) == sorted(str(key) for key in expected)
    for letter in letters:
        assert letter.attempts == MAX_ATTEMPTS
        assert letter.topic == "job"
        assert "Boom" in letter.error
        assert letter.original().content == expected[letter.identifier]
    sink = handler.sink
    assert sink is not None
    assert sink.handled == healthy
    assert sink.dead_lettered == len(poison) + 1
    assert sink.retried == (len(poison) + 1) * (MAX_ATTEMPTS - 1)
