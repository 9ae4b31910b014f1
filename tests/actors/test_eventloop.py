"""The event loops minos.networks makes itself: uvloop unless MINOS_NETWORKS_LOOP says asyncio."""

import asyncio
import sys

import pytest
import uvloop

from minos.networks.actors import (
    LOOP_VARIABLE,
    ActorContext,
    LoopActor,
    call,
    loop_kind,
    new_event_loop,
    run_main,
    stop_actor,
)


class LoopReporter(LoopActor):
    """Tells the type of the loop its thread runs."""

    def loop_type(self) -> type:
        return self.call_in_loop(self._loop_type, timeout=5.0)

    async def _loop_type(self) -> type:
        return type(asyncio.get_running_loop())


@pytest.fixture
def unset(monkeypatch):
    monkeypatch.delenv(LOOP_VARIABLE, raising=False)


def made_loop_type() -> type:
    loop = new_event_loop()
    try:
        return type(loop)
    finally:
        loop.close()


@pytest.mark.usefixtures("unset")
def test_uvloop_when_installed_and_nothing_is_asked():
    assert loop_kind() == "uvloop"
    assert made_loop_type() is uvloop.Loop


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_the_variable_picks_the_standard_loop(monkeypatch, value):
    monkeypatch.setenv(LOOP_VARIABLE, value)

    assert loop_kind() == "asyncio"
    loop = new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


def test_a_wrong_value_says_what_is_accepted(monkeypatch):
    monkeypatch.setenv(LOOP_VARIABLE, "trio")

    with pytest.raises(ValueError, match=r"MINOS_NETWORKS_LOOP='trio' .* 'uvloop' or 'asyncio'"):
        new_event_loop()


def test_demanding_uvloop_without_it_fails_with_what_to_do(monkeypatch):
    monkeypatch.setenv(LOOP_VARIABLE, "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed

    with pytest.raises(ImportError, match="pip install uvloop"):
        new_event_loop()


def test_without_uvloop_and_nothing_asked_the_standard_loop_serves(monkeypatch, unset):
    monkeypatch.setitem(sys.modules, "uvloop", None)

    assert loop_kind() == "asyncio"


@pytest.mark.usefixtures("unset")
def test_actor_threads_run_on_uvloop():
    ref = LoopReporter.start(ActorContext(name="reporter"))
    try:
        assert asyncio.run(call(ref, "loop_type", timeout=5.0)) is uvloop.Loop
    finally:
        assert stop_actor(ref, timeout=5.0)


def test_actor_threads_run_on_the_standard_loop_when_asked(monkeypatch):
    monkeypatch.setenv(LOOP_VARIABLE, "asyncio")
    ref = LoopReporter.start(ActorContext(name="reporter"))
    try:
        kind = asyncio.run(call(ref, "loop_type", timeout=5.0))
    finally:
        assert stop_actor(ref, timeout=5.0)
    assert not issubclass(kind, uvloop.Loop)


@pytest.mark.usefixtures("unset")
def test_run_main_runs_a_coroutine_to_its_result_on_uvloop():
    async def main() -> type:
        return type(asyncio.get_running_loop())

    assert run_main(main()) is uvloop.Loop


def test_run_main_refusing_the_loop_closes_the_coroutine_unstarted(monkeypatch):
    monkeypatch.setenv(LOOP_VARIABLE, "nonsense")
    started = []

    async def main() -> None:
        started.append(True)

    coroutine = main()
    with pytest.raises(ValueError, match="nonsense"):
        run_main(coroutine)

    assert started == []
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning later
