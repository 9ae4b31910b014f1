"""LoopActor: one event loop per actor on its own thread, started and stopped within bounds."""

import asyncio
import logging
import threading
import time
from typing import ClassVar

import pytest

from minos.networks.actors import (
    ActorContext,
    ActorTimeoutError,
    LoopActor,
    LoopClosedError,
    call,
    stop_actor,
    wait_stopped,
)


class Recorder(LoopActor):
    """Records which thread ran what, and hands itself to the test through ``instances``."""

    instances: ClassVar[list["Recorder"]] = []

    def __init__(self, context=None, **timeouts):
        super().__init__(context, **timeouts)
        self.threads: dict[str, threading.Thread] = {}
        self.loop_stopped = threading.Event()
        Recorder.instances.append(self)

    def on_start(self):
        super().on_start()
        self.threads["on_start"] = threading.current_thread()

    async def on_loop_start(self):
        self.threads["on_loop_start"] = threading.current_thread()

    async def on_loop_stop(self):
        self.threads["on_loop_stop"] = threading.current_thread()
        self.loop_stopped.set()

    async def double(self, value: int) -> int:
        self.threads["double"] = threading.current_thread()
        await asyncio.sleep(0)  # sync-ok: a bare yield, so the coroutine really suspends
        return value * 2

    def double_from_handler(self, value: int) -> int:
        return self.call_in_loop(self.double, value, timeout=5.0)

    def on_receive(self, message):
        if isinstance(message, Exception):
            raise message
        return message


@pytest.fixture(autouse=True)
def forget_instances():
    yield
    Recorder.instances.clear()


def start_recorder(name: str = "io", **timeouts) -> tuple:
    ref = Recorder.start(ActorContext(name=name), **timeouts)
    ref.ask("started", timeout=5.0)  # answered once on_start is done
    return ref, Recorder.instances[-1]


def test_the_loop_hooks_run_on_the_loop_thread_and_the_pykka_hooks_on_the_actor_thread():
    ref, actor = start_recorder("io")

    assert stop_actor(ref, timeout=5.0)

    assert actor.threads["on_start"].name == "minos-io"
    assert actor.threads["on_loop_start"].name == "minos-io-loop"
    assert actor.threads["on_loop_stop"] is actor.threads["on_loop_start"]
    assert actor.threads["on_loop_start"] is not actor.threads["on_start"]
    assert not actor.loop_thread.is_alive()
    assert actor.loop.is_closed()


async def test_a_message_handler_can_run_a_coroutine_in_the_loop_and_get_its_result():
    ref, actor = start_recorder()
    try:
        assert await call(ref, "double_from_handler", 21, timeout=5.0) == 42
        assert actor.threads["double"] is actor.loop_thread
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_any_thread_can_submit_work_to_the_loop():
    ref, actor = start_recorder()
    try:
        future = actor.submit(actor.double, 5)
        assert future.result(timeout=5.0) == 10
        assert actor.threads["double"] is actor.loop_thread
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_submitting_to_a_stopped_loop_raises_loop_closed_error():
    ref, actor = start_recorder()
    assert stop_actor(ref, timeout=5.0)

    with pytest.raises(LoopClosedError):
        actor.submit(actor.double, 1)


def test_cancelling_a_submitted_future_cancels_its_task():
    ref, actor = start_recorder()
    started, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        future = actor.submit(forever)
        assert started.wait(5.0)
        assert future.cancel()
        assert cancelled.wait(5.0)
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_call_in_loop_past_its_timeout_cancels_the_coroutine_and_raises():
    class Slow(LoopActor):
        cancelled = threading.Event()

        async def forever(self) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                Slow.cancelled.set()
                raise

        def run(self) -> None:
            self.call_in_loop(self.forever, timeout=0.05)

    ref = Slow.start()
    try:
        with pytest.raises(ActorTimeoutError, match="did not finish in the loop"):
            ref.proxy().run().get(timeout=5.0)
        assert Slow.cancelled.wait(5.0)
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_tasks_left_in_the_loop_are_cancelled_when_the_actor_stops():
    class Background(LoopActor):
        cancelled = threading.Event()

        async def on_loop_start(self) -> None:
            self.task = asyncio.get_running_loop().create_task(self.serve())

        async def serve(self) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                Background.cancelled.set()
                raise

    ref = Background.start()

    assert stop_actor(ref, timeout=5.0)
    assert Background.cancelled.is_set()


def test_a_stuck_on_loop_stop_is_cancelled_after_the_stop_timeout(caplog):
    class Stuck(LoopActor):
        cancelled = threading.Event()

        async def on_loop_stop(self) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                Stuck.cancelled.set()
                raise

    ref = Stuck.start(ActorContext(name="stuck"), stop_timeout=0.1)
    started = time.monotonic()

    assert stop_actor(ref, timeout=5.0)

    assert time.monotonic() - started < 2.0
    assert Stuck.cancelled.is_set()
    assert "on_loop_stop of Stuck 'stuck'" in caplog.text


def test_a_loop_blocked_by_synchronous_code_is_logged_and_left_behind_without_hanging_the_stop(caplog):
    release = threading.Event()

    class Blocking(LoopActor):
        async def on_loop_stop(self) -> None:
            release.wait(timeout=10.0)  # synchronous: blocks the whole loop thread

    ref = Blocking.start(ActorContext(name="blocking"), stop_timeout=0.1, cancel_timeout=0.1)
    loop_threads = [thread for thread in threading.enumerate() if thread.name == "minos-blocking-loop"]
    started = time.monotonic()
    try:
        assert stop_actor(ref, timeout=5.0)
        assert time.monotonic() - started < 3.0
        assert "the loop thread minos-blocking-loop of Blocking 'blocking'" in caplog.text
        assert "did not end within" in caplog.text
    finally:
        release.set()
        for thread in loop_threads:
            thread.join(5.0)


def test_a_failing_on_loop_start_fails_the_actor_closes_its_loop_and_skips_on_loop_stop():
    class Broken(LoopActor):
        instances: ClassVar[list["Broken"]] = []
        stopped = threading.Event()

        def __init__(self, context=None):
            super().__init__(context)
            Broken.instances.append(self)

        async def on_loop_start(self) -> None:
            raise OSError("address in use")

        async def on_loop_stop(self) -> None:
            Broken.stopped.set()

    ref = Broken.start()

    assert wait_stopped(ref, 5.0)
    assert not ref.is_alive()
    actor = Broken.instances[0]
    assert actor.loop.is_closed()
    assert not actor.loop_thread.is_alive()
    assert not Broken.stopped.is_set()


def test_a_crash_in_a_message_handler_still_runs_on_loop_stop_and_closes_the_loop():
    ref, actor = start_recorder()

    ref.tell(RuntimeError("handler bug"))

    assert wait_stopped(ref, 5.0)
    assert actor.loop_stopped.is_set()
    assert actor.loop.is_closed()


def test_call_in_loop_from_the_loop_thread_refuses_instead_of_deadlocking():
    ref, actor = start_recorder()

    async def nested() -> None:
        actor.call_in_loop(actor.double, 1, timeout=1.0)

    try:
        with pytest.raises(RuntimeError, match="would wait on itself"):
            actor.submit(nested).result(timeout=5.0)
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_stopping_a_loop_actor_logs_nothing_above_info(caplog):
    with caplog.at_level(logging.INFO):
        ref, _ = start_recorder()
        assert stop_actor(ref, timeout=5.0)

    assert [record.getMessage() for record in caplog.records if record.levelno > logging.INFO] == []


class Borrower(Recorder):
    """A Recorder that runs in a borrowed loop."""

    async def forever(self) -> None:
        await asyncio.Event().wait()


async def test_an_actor_in_a_borrowed_loop_runs_there_and_leaves_the_loop_running_when_it_stops():
    from minos.networks.actors import BorrowedLoop

    borrowed = BorrowedLoop.current()
    ref = Borrower.start(ActorContext(name="borrower"), borrow=borrowed)
    await asyncio.to_thread(ref.ask, "started", timeout=5.0)  # on_start blocks on the loop: keep it free
    actor = Recorder.instances[-1]
    try:
        assert actor.loop is asyncio.get_running_loop()
        assert actor.loop_thread is threading.current_thread()
        assert actor.threads["on_loop_start"] is threading.current_thread()
        assert await asyncio.wrap_future(actor.submit(actor.double, 4)) == 8
        assert actor.threads["double"] is threading.current_thread()
        left_running = actor.submit(actor.forever)
    finally:
        assert await asyncio.to_thread(stop_actor, ref, timeout=5.0)
    assert actor.loop_stopped.is_set()
    assert actor.threads["on_loop_stop"] is threading.current_thread()
    assert left_running.cancelled()  # what it submitted was cancelled ...
    assert asyncio.get_running_loop().is_running()  # ... and the loop it borrowed runs on
    assert not any(thread.name == "minos-borrower-loop" for thread in threading.enumerate())
    with pytest.raises(LoopClosedError):
        actor.submit(actor.double, 1)
