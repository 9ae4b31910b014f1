"""Supervision: crashed children restart with fresh state, too many failures in the window escalate."""

import contextlib
import functools
import logging
import threading

import pykka
import pytest

from minos.networks.actors import (
    Actor,
    ChildDirectory,
    ChildSpec,
    DeadLetters,
    EscalationError,
    GetChild,
    GetChildren,
    RestartPolicy,
    Supervisor,
    UnknownChildError,
    stop_actor,
    wait_stopped,
)
from minos.networks.actors.actor import ActorContext


class Crash(Exception):
    pass


class Counter(Actor):
    """Counts "increment" messages; a told exception makes it fail."""

    def __init__(self, context: ActorContext | None = None) -> None:
        super().__init__(context)
        self.count = 0

    def on_receive(self, message):
        if isinstance(message, Exception):
            raise message
        if message == "increment":
            self.count += 1
        return self.count


class Escalations:
    """Collects on_escalate calls and lets the test wait for the first one."""

    def __init__(self) -> None:
        self.errors: list[EscalationError] = []
        self.happened = threading.Event()

    def __call__(self, error: EscalationError) -> None:
        self.errors.append(error)
        self.happened.set()


TWO_RESTARTS_IN_TEN_SECONDS = RestartPolicy(max_restarts=2, within_seconds=10.0)


def start_supervisor(clock, *, policy=TWO_RESTARTS_IN_TEN_SECONDS, children=None):
    directory = ChildDirectory()
    escalations = Escalations()
    ref = Supervisor.start(
        ActorContext(name="sup", dead_letters=DeadLetters()),
        children=children or [ChildSpec("counter", Counter.start), ChildSpec("other", Counter.start)],
        policy=policy,
        clock=clock,
        on_escalate=escalations,
        directory=directory,
    )
    with contextlib.suppress(pykka.ActorDeadError):  # a supervisor whose children cannot start is dead
        ref.ask(GetChildren(), timeout=5.0)  # answered once on_start has started the children
    return ref, directory, escalations


def crash_and_wait_for_restart(directory, name="counter"):
    old = directory.get(name)
    old.tell(Crash(f"crash of {old.actor_urn}"))
    return directory.wait_ref(name, other_than=old, timeout=5.0)


def test_a_crashed_child_is_restarted_and_keeps_serving_with_fresh_state(clock):
    supervisor, directory, escalations = start_supervisor(clock)
    try:
        first = directory.wait_ref("counter", timeout=5.0)
        assert first.ask("increment", timeout=5.0) == 1
        assert first.ask("increment", timeout=5.0) == 2

        second = crash_and_wait_for_restart(directory)

        assert second.ask("increment", timeout=5.0) == 1
        assert supervisor.ask(GetChild("counter"), timeout=5.0) is second
        assert wait_stopped(first, 5.0)
        assert not escalations.errors
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_a_restarted_child_keeps_its_name_and_thread_name(clock):
    supervisor, directory, _ = start_supervisor(clock)
    try:
        second = crash_and_wait_for_restart(directory)
        assert second.ask("get", timeout=5.0) == 0
        assert "minos-counter" in [thread.name for thread in threading.enumerate()]
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_more_failures_than_the_policy_allows_within_the_window_escalate(clock, caplog):
    supervisor, directory, escalations = start_supervisor(clock)
    other = directory.wait_ref("other", timeout=5.0)
    crash_and_wait_for_restart(directory)
    clock.advance(4.0)
    crash_and_wait_for_restart(directory)
    clock.advance(4.0)  # the third failure is 8 s after the first: inside the 10 s window

    directory.get("counter").tell(Crash("third"))

    assert escalations.happened.wait(5.0)
    assert wait_stopped(supervisor, 5.0)
    (error,) = escalations.errors
    assert isinstance(error.__cause__, Crash)
    assert (error.supervisor, error.child) == ("sup", "counter")
    assert "after 2 restarts within 10.0 s (at most 2 allowed)" in str(error)
    assert not other.is_alive()
    assert not directory.get("counter").is_alive()
    assert "supervisor 'sup' gives up" in caplog.text


def test_failures_spread_over_more_than_the_window_do_not_escalate(clock):
    supervisor, directory, escalations = start_supervisor(clock)
    try:
        for _ in range(6):
            clock.advance(5.1)  # each failure comes 10.2 s after the one before: never two in a window
            current = crash_and_wait_for_restart(directory)
            clock.advance(5.1)
        assert current.ask("increment", timeout=5.0) == 1
        assert not escalations.errors
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_with_no_restarts_allowed_the_first_failure_escalates(clock):
    supervisor, directory, escalations = start_supervisor(clock, policy=RestartPolicy(max_restarts=0))

    directory.wait_ref("counter", timeout=5.0).tell(Crash("first"))

    assert escalations.happened.wait(5.0)
    assert wait_stopped(supervisor, 5.0)


def test_a_restarted_child_that_fails_in_on_start_is_retried_as_one_more_restart(clock):
    starts = []

    class Flaky(Counter):
        def on_start(self) -> None:
            starts.append(self.actor_urn)
            if len(starts) == 2:
                raise OSError("port still busy after the crash")

    supervisor, directory, escalations = start_supervisor(clock, children=[ChildSpec("flaky", Flaky.start)])
    try:
        third = crash_and_wait_for_restart(directory, "flaky")
        if third.actor_urn != starts[-1] or len(starts) < 3:  # saw the second, failed incarnation
            third = directory.wait_ref("flaky", other_than=third, timeout=5.0)
        assert third.ask("increment", timeout=5.0) == 1
        assert len(starts) == 3
        assert not escalations.errors
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_a_child_failing_in_its_first_on_start_makes_the_supervisor_escalate(clock):
    class Broken(Counter):
        def on_start(self) -> None:
            raise OSError("address in use")

    supervisor, _, escalations = start_supervisor(
        clock, children=[ChildSpec("counter", Counter.start), ChildSpec("broken", Broken.start)]
    )

    assert escalations.happened.wait(5.0)
    assert wait_stopped(supervisor, 5.0)
    assert isinstance(escalations.errors[0].__cause__, OSError)
    assert "child 'broken' did not start" in str(escalations.errors[0])


def test_a_child_that_cannot_be_started_makes_the_supervisor_stop_the_others_and_escalate(clock):
    def broken_factory(*, context):
        raise ValueError("bad configuration")

    supervisor, directory, escalations = start_supervisor(
        clock, children=[ChildSpec("counter", Counter.start), ChildSpec("broken", broken_factory)]
    )

    assert escalations.happened.wait(5.0)
    assert wait_stopped(supervisor, 5.0)
    assert isinstance(escalations.errors[0].__cause__, ValueError)
    assert "child 'broken' did not start" in str(escalations.errors[0])
    assert not directory.get("counter").is_alive()


def test_a_child_that_stops_without_failing_is_not_restarted(clock):
    supervisor, directory, _ = start_supervisor(clock)
    try:
        counter = directory.wait_ref("counter", timeout=5.0)
        assert stop_actor(counter, timeout=5.0)
        assert supervisor.ask(GetChildren(), timeout=5.0)["counter"] is counter
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_a_nested_supervisor_that_escalates_is_restarted_by_its_parent_with_fresh_children(clock):
    inner_directory = ChildDirectory()
    inner = functools.partial(
        Supervisor.start,
        children=[ChildSpec("counter", Counter.start)],
        policy=RestartPolicy(max_restarts=0),
        directory=inner_directory,
    )
    outer, outer_directory, escalations = start_supervisor(clock, children=[ChildSpec("inner", inner)])
    try:
        first_inner = outer_directory.wait_ref("inner", timeout=5.0)
        first_counter = inner_directory.wait_ref("counter", timeout=5.0)
        first_counter.ask("increment", timeout=5.0)

        first_counter.tell(Crash("escalates inside"))

        second_inner = outer_directory.wait_ref("inner", other_than=first_inner, timeout=5.0)
        second_counter = inner_directory.wait_ref("counter", other_than=first_counter, timeout=5.0)
        assert second_counter.ask("increment", timeout=5.0) == 1
        assert second_inner.is_alive()
        assert not escalations.errors
    finally:
        assert stop_actor(outer, timeout=5.0)


def test_asking_for_an_unknown_child_raises_unknown_child_error_and_the_supervisor_lives_on(clock):
    supervisor, _, _ = start_supervisor(clock)
    try:
        with pytest.raises(UnknownChildError, match="'nope'"):
            supervisor.ask(GetChild("nope"), timeout=5.0)
        assert supervisor.is_alive()
    finally:
        assert stop_actor(supervisor, timeout=5.0)


async def test_a_child_handle_reaches_the_current_incarnation_across_restarts(clock):
    supervisor, directory, _ = start_supervisor(clock)
    dead_letters = DeadLetters()
    handle = directory.handle("counter", dead_letters=dead_letters)
    try:
        assert handle.tell("increment")
        assert await handle.ask("increment", timeout=5.0) == 2

        crash_and_wait_for_restart(directory)

        assert await handle.ask("increment", timeout=5.0) == 1
        assert dead_letters.count == 0
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_duplicate_child_names_are_refused(clock):
    with pytest.raises(ValueError, match="unique"):
        Supervisor(children=[ChildSpec("a", Counter.start), ChildSpec("a", Counter.start)])


def test_a_restart_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="max_restarts"):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ValueError, match="within_seconds"):
        RestartPolicy(within_seconds=0)


def test_each_restart_is_logged_as_a_warning(clock, caplog):
    supervisor, directory, _ = start_supervisor(clock)
    try:
        with caplog.at_level(logging.WARNING, logger="minos.networks.actors.supervisor"):
            crash_and_wait_for_restart(directory)
        assert "restarts child 'counter' after Crash(" in caplog.text
    finally:
        assert stop_actor(supervisor, timeout=5.0)


def test_a_factory_may_return_a_plain_pykka_actor_but_its_failures_go_unnoticed(clock):
    class Plain(pykka.ThreadingActor):
        def __init__(self, context=None):
            super().__init__()

        def on_receive(self, message):
            raise RuntimeError("nobody hears this")

    supervisor, directory, _ = start_supervisor(clock, children=[ChildSpec("plain", Plain.start)])
    try:
        plain = directory.get("plain")
        plain.tell("crash")
        assert plain.actor_stopped.wait(5.0)
        assert supervisor.ask(GetChild("plain"), timeout=5.0) is plain  # not restarted: subclass Actor
    finally:
        assert stop_actor(supervisor, timeout=5.0)
