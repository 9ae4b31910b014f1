"""Awaiting actors from asyncio: the loop keeps running, errors and timeouts arrive as exceptions."""

import asyncio
import logging
import threading

import pykka
import pytest
from pykka.messages import ProxyCall

from minos.networks.actors import (
    Actor,
    ActorTimeoutError,
    ReplyFuture,
    ask,
    await_future,
    call,
    stop_actor,
)


class Gate(Actor):
    """Answers after the test opens the gate; meanwhile its thread is busy."""

    def block(
        self, loop: asyncio.AbstractEventLoop, entered: asyncio.Event, release: threading.Event
    ) -> bool:
        loop.call_soon_threadsafe(entered.set)
        return release.wait(timeout=5.0)

    def wait_for(self, release: threading.Event) -> bool:
        return release.wait(timeout=5.0)

    def add(self, a: int, b: int) -> int:
        return a + b

    def on_receive(self, message):
        if isinstance(message, Exception):
            raise message
        return message


@pytest.fixture
def gate():
    ref = Gate.start()
    yield ref
    assert stop_actor(ref, timeout=5.0)


async def test_awaiting_a_busy_actor_leaves_the_event_loop_free_to_run_other_tasks(gate):
    loop = asyncio.get_running_loop()
    entered, hundred_ticks = asyncio.Event(), asyncio.Event()
    release = threading.Event()

    async def ticker() -> None:
        await entered.wait()
        for _ in range(100):
            await asyncio.sleep(0)  # sync-ok: a bare yield; counting turns proves the loop runs
        hundred_ticks.set()

    answer = asyncio.create_task(call(gate, "block", loop, entered, release, timeout=10.0))
    ticking = asyncio.create_task(ticker())
    # Both events are set by the loop while the actor is blocked: if awaiting the answer blocked the
    # loop, the actor's gate would time out after 5 s and answer False.
    await asyncio.wait_for(hundred_ticks.wait(), timeout=10.0)
    loop.call_soon(release.set)

    assert await answer is True
    await ticking


async def test_pykkas_own_await_blocks_the_loop_which_is_why_the_bridge_exists():
    class ShortGate(Actor):
        def block(self, loop, entered, release):
            loop.call_soon_threadsafe(release.set)  # runs only once the loop is free again
            return release.wait(timeout=0.2)

    ref = ShortGate.start()
    try:
        loop = asyncio.get_running_loop()
        future = ref.ask(ProxyCall(("block",), (loop, None, threading.Event()), {}), block=False)
        assert await future is False  # pykka's __await__ called get() on the loop thread
    finally:
        assert stop_actor(ref, timeout=5.0)


async def test_an_exception_raised_by_the_actor_arrives_as_that_exception_and_the_actor_lives_on(gate):
    error = ValueError("bad order")
    with pytest.raises(ValueError, match="bad order") as raised:
        await ask(gate, error, timeout=5.0)

    assert raised.value is error
    assert await ask(gate, "still here", timeout=5.0) == "still here"


async def test_a_timeout_error_raised_by_the_actor_is_not_mistaken_for_a_timeout_of_the_wait(gate):
    with pytest.raises(TimeoutError, match="the actor's own") as raised:
        await ask(gate, TimeoutError("the actor's own"), timeout=5.0)

    assert not isinstance(raised.value, ActorTimeoutError)


async def test_no_answer_within_the_timeout_raises_a_timeout_error_naming_what_was_awaited(gate):
    entered, release = asyncio.Event(), threading.Event()
    busy = asyncio.create_task(call(gate, "block", asyncio.get_running_loop(), entered, release))
    await asyncio.wait_for(entered.wait(), timeout=5.0)

    with pytest.raises(ActorTimeoutError, match=r"Gate .*'ping'.* did not answer within 0.05 s") as raised:
        await ask(gate, "ping", timeout=0.05)

    assert isinstance(raised.value, TimeoutError)
    release.set()
    assert await busy is True
    assert await ask(gate, "pong", timeout=5.0) == "pong"


async def test_cancelling_the_awaiting_task_does_not_disturb_the_actor(gate):
    entered, release = asyncio.Event(), threading.Event()
    waiting = asyncio.create_task(call(gate, "block", asyncio.get_running_loop(), entered, release))
    await asyncio.wait_for(entered.wait(), timeout=5.0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    release.set()
    assert await call(gate, "add", 2, 3, timeout=5.0) == 5


async def test_a_proxy_call_can_be_awaited_through_the_bridge(gate):
    assert await await_future(gate.proxy().add(2, 3), timeout=5.0) == 5


async def test_a_mapped_reply_future_stays_awaitable_without_a_helper_thread(gate):
    future = gate.ask(21, block=False)
    assert isinstance(future, ReplyFuture)

    doubled = future.map(lambda value: value * 2)

    assert doubled.observable
    assert await await_future(doubled, timeout=5.0) == 42


async def test_asking_a_dead_actor_raises_actor_dead_error():
    ref = Gate.start()
    assert stop_actor(ref, timeout=5.0)

    with pytest.raises(pykka.ActorDeadError):
        await ask(ref, "anyone?", timeout=5.0)


async def test_a_future_of_a_plain_pykka_actor_is_awaited_in_a_helper_thread_that_ends():
    class Plain(pykka.ThreadingActor):
        def on_receive(self, message):
            return message * 2

    ref = Plain.start()
    try:
        future = ref.ask(4, block=False)
        assert not isinstance(future, ReplyFuture)
        assert await await_future(future, timeout=5.0) == 8
    finally:
        ref.stop(timeout=5.0)


def test_an_answer_arriving_after_its_loop_closed_is_dropped_quietly(gate, caplog):
    release = threading.Event()

    async def give_up_waiting() -> None:
        with pytest.raises(ActorTimeoutError):
            await call(gate, "wait_for", release, timeout=0.05)

    asyncio.run(give_up_waiting())  # closes its loop before the actor answers
    with caplog.at_level(logging.ERROR):
        release.set()
        assert gate.ask("after", timeout=5.0) == "after"

    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_a_reply_future_calls_back_once_resolved_even_when_the_callback_comes_late():
    future: ReplyFuture[int] = ReplyFuture()
    seen = []
    future.add_done_callback(lambda done: seen.append(("early", done.get(timeout=0))))

    future.set(7)
    future.add_done_callback(lambda done: seen.append(("late", done.get(timeout=0))))

    assert seen == [("early", 7), ("late", 7)]
    assert future.done()


def test_a_failing_done_callback_is_logged_and_does_not_break_the_resolver(caplog):
    future: ReplyFuture[int] = ReplyFuture()
    future.add_done_callback(lambda done: 1 / 0)

    with caplog.at_level(logging.ERROR, logger="minos.networks.actors.bridge"):
        future.set(1)

    assert future.get(timeout=0) == 1
    assert "done-callback" in caplog.text
