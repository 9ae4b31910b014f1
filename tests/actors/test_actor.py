"""The base Actor: named threads, stopping within a bound, and pykka's rules it keeps."""

import asyncio
import threading

import pykka
import pytest

from minos.networks.actors import (
    Actor,
    ActorContext,
    await_stopped,
    stop_actor,
    threads,
    wait_stopped,
)


class Busy(Actor):
    def __init__(self, context=None, *, entered=None, release=None):
        super().__init__(context)
        self.entered, self.release = entered, release
        self.thread_name = None

    def on_start(self):
        self.thread_name = threading.current_thread().name

    def on_receive(self, message):
        if message == "block":
            self.entered.set()
            self.release.wait(timeout=10.0)
        if message == "thread":
            return self.thread_name
        if isinstance(message, Exception):
            raise message
        return message


def test_an_actor_runs_on_a_thread_named_after_it():
    ref = Busy.start(ActorContext(name="worker"))
    try:
        assert ref.ask("thread", timeout=5.0) == "minos-worker"
        assert "minos-worker" in [thread.name for thread in threads()]
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_an_actor_without_a_context_gets_a_unique_name_from_its_class():
    first, second = Busy.start(), Busy.start()
    try:
        names = {first.ask("thread", timeout=5.0), second.ask("thread", timeout=5.0)}
        assert len(names) == 2
        assert all(name.startswith("minos-Busy-") for name in names)
    finally:
        assert stop_actor(first, timeout=5.0)
        assert stop_actor(second, timeout=5.0)


def test_stop_actor_waits_for_the_thread_to_end_and_leaves_the_registry_empty():
    ref = Busy.start()

    assert stop_actor(ref, timeout=5.0)

    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_all() == []
    assert "minos-Busy" not in " ".join(thread.name for thread in threads())


def test_stopping_an_actor_stuck_in_a_handler_gives_up_after_the_timeout_and_it_stops_later():
    entered, release = threading.Event(), threading.Event()
    ref = Busy.start(entered=entered, release=release)
    ref.tell("block")
    assert entered.wait(5.0)

    assert stop_actor(ref, timeout=0.05) is False

    release.set()
    assert wait_stopped(ref, 5.0)


async def test_await_stopped_waits_for_the_thread_without_blocking_the_loop():
    entered, release = threading.Event(), threading.Event()
    ref = Busy.start(entered=entered, release=release)
    ref.tell("block")
    ref.stop(block=False)
    assert await asyncio.to_thread(entered.wait, 5.0)

    waiting = asyncio.create_task(await_stopped(ref, 5.0))
    asyncio.get_running_loop().call_soon(release.set)  # runs only if the loop is free

    assert await waiting is True


async def test_await_stopped_gives_up_after_its_timeout():
    entered, release = threading.Event(), threading.Event()
    ref = Busy.start(entered=entered, release=release)
    ref.tell("block")
    try:
        assert await await_stopped(ref, 0.05) is False
    finally:
        release.set()
        assert stop_actor(ref, timeout=5.0)


def test_a_failed_ask_goes_back_to_the_asker_and_does_not_stop_the_actor():
    ref = Busy.start()
    try:
        with pytest.raises(KeyError):
            ref.ask(KeyError("missing"), timeout=5.0)
        assert ref.ask("alive", timeout=5.0) == "alive"
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_a_failed_tell_stops_the_actor_for_good_which_is_what_supervision_is_for():
    ref = Busy.start()

    ref.tell(KeyError("missing"))

    assert wait_stopped(ref, 5.0)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("anyone?")
