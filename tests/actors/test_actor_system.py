"""ActorSystem: a tree of actors started as one and stopped within a bound, leaving nothing behind."""

import asyncio
import functools
import threading
import time

import pykka
import pytest

from minos.networks.actors import (
    Actor,
    ActorContext,
    ActorSystem,
    ChildSpec,
    EscalationError,
    LoopActor,
    RestartPolicy,
    threads,
    wait_stopped,
)


class Worker(Actor):
    """Answers what it is asked; "block" holds it in a handler until released; stops are logged."""

    def __init__(
        self, context: ActorContext | None = None, *, stops=None, entered=None, release=None
    ) -> None:
        super().__init__(context)
        self.stops, self.entered, self.release = stops, entered, release

    def on_receive(self, message):
        if message == "block":
            self.entered.set()
            return self.release.wait(timeout=10.0)
        if isinstance(message, Exception):
            raise message
        return message

    def on_stop(self):
        if self.stops is not None:
            self.stops.append(self.actor_name)


class Io(LoopActor):
    async def on_loop_start(self) -> None:
        self.started_in = threading.current_thread().name


def test_children_start_in_order_and_stop_in_reverse_order():
    stops = []
    specs = [ChildSpec(name, functools.partial(Worker.start, stops=stops)) for name in ("a", "b", "c")]

    with ActorSystem(specs) as system:
        assert list(system.directory.names()) == ["a", "b", "c"]
        assert system.child("b").ref.ask("hello", timeout=5.0) == "hello"

    assert stops == ["c", "b", "a"]


def test_after_stop_no_actor_is_registered_and_no_minos_thread_is_left():
    specs = [ChildSpec("worker", Worker.start), ChildSpec("io", Io.start)]
    with ActorSystem(specs) as system:
        names = {thread.name for thread in threads()}
        assert {"minos-root", "minos-worker", "minos-io", "minos-io-loop"} <= names
        assert len(pykka.ActorRegistry.get_all()) == 3

    assert system.stop() == ()  # a second stop is harmless
    assert pykka.ActorRegistry.get_all() == []
    assert threads() == []


def test_stopping_with_a_child_stuck_in_a_handler_is_bounded_and_names_the_stuck_child(caplog):
    entered, release = threading.Event(), threading.Event()
    stops = []
    specs = [
        ChildSpec("calm", functools.partial(Worker.start, stops=stops)),
        ChildSpec("busy", functools.partial(Worker.start, entered=entered, release=release)),
    ]
    system = ActorSystem(specs).start()
    busy = system.child("busy").ref
    busy.tell("block")
    assert entered.wait(5.0)

    started = time.monotonic()
    stuck = system.stop(timeout=1.0)
    elapsed = time.monotonic() - started

    assert stuck == ("busy",)
    assert elapsed < 1.5
    assert stops == ["calm"]
    assert "child 'busy' did not stop in time" in caplog.text
    release.set()
    assert wait_stopped(busy, 5.0)
    assert pykka.ActorRegistry.get_all() == []


async def test_async_with_starts_and_stops_the_system_without_blocking_the_loop():
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)  # sync-ok: a bare yield; counting turns proves the loop runs

    ticking = asyncio.create_task(tick())
    try:
        async with ActorSystem([ChildSpec("worker", Worker.start), ChildSpec("io", Io.start)]) as system:
            assert await system.child("worker").ask("hello", timeout=5.0) == "hello"
        assert await system.stop_async() == ()
    finally:
        ticking.cancel()
    assert ticks > 0
    assert threads() == []
    assert pykka.ActorRegistry.get_all() == []


def test_an_escalation_of_the_root_is_kept_reported_and_the_system_still_stops_cleanly(clock):
    escalated = threading.Event()
    system = ActorSystem(
        [ChildSpec("worker", Worker.start)],
        policy=RestartPolicy(max_restarts=0),
        clock=clock,
        on_escalate=lambda error: escalated.set(),
    ).start()

    system.child("worker").tell(RuntimeError("fatal"))

    assert escalated.wait(5.0)
    assert isinstance(system.escalation, EscalationError)
    assert wait_stopped(system.root, 5.0)
    assert system.stop(timeout=1.0) == ()
    assert system.child("worker").tell("too late") is False
    assert system.dead_letters.count == 1


def test_a_child_that_cannot_start_makes_start_raise_the_escalation_and_stop_the_rest():
    def broken(*, context):
        raise ValueError("no such endpoint")

    system = ActorSystem([ChildSpec("worker", Worker.start), ChildSpec("broken", broken)])

    with pytest.raises(EscalationError, match="child 'broken' did not start") as raised:
        system.start()

    assert isinstance(raised.value.__cause__, ValueError)
    assert system.stop() == ()
    assert pykka.ActorRegistry.get_all() == []


async def test_a_child_that_cannot_start_makes_the_async_start_raise_the_escalation():
    def broken(*, context):
        raise ValueError("no such endpoint")

    with pytest.raises(EscalationError, match="child 'broken' did not start"):
        async with ActorSystem([ChildSpec("broken", broken)]):
            pass


def test_a_system_starts_only_once():
    with ActorSystem([]) as system, pytest.raises(RuntimeError, match="already started"):
        system.start()


def test_the_root_of_a_system_not_started_is_refused():
    with pytest.raises(RuntimeError, match="was not started"):
        ActorSystem([]).root  # noqa: B018
