"""Dead letters: undelivered messages are counted, kept and logged at a bounded rate, never dropped unseen."""

import logging
import threading

import pykka
import pytest

from minos.networks.actors import (
    Actor,
    ActorContext,
    DeadLetters,
    stop_actor,
    tell,
    wait_stopped,
)


class Sink(Actor):
    """Blocks on the first message until released; a told exception makes it fail."""

    def __init__(self, context=None, *, entered=None, release=None):
        super().__init__(context)
        self.entered, self.release = entered, release

    def on_receive(self, message):
        if message == "block":
            self.entered.set()
            self.release.wait(timeout=5.0)
        elif isinstance(message, Exception):
            raise message
        return message


def test_a_message_told_to_a_dead_actor_is_counted_kept_and_logged(caplog):
    dead_letters = DeadLetters()
    ref = Sink.start()
    assert stop_actor(ref, timeout=5.0)

    delivered = tell(ref, {"order": 1}, dead_letters=dead_letters)

    assert delivered is False
    assert dead_letters.count == 1
    (letter,) = dead_letters.recent
    assert letter.recipient == str(ref)
    assert letter.message == "{'order': 1}"
    assert letter.reason == "the recipient is not running"
    assert "dead letter to Sink" in caplog.text


def test_a_message_told_to_a_live_actor_is_no_dead_letter():
    dead_letters = DeadLetters()
    ref = Sink.start()
    try:
        assert tell(ref, "hello", dead_letters=dead_letters) is True
        assert ref.ask("sync", timeout=5.0) == "sync"
    finally:
        assert stop_actor(ref, timeout=5.0)
    assert dead_letters.count == 0


def test_messages_left_in_the_mailbox_of_an_actor_that_failed_are_dead_letters():
    dead_letters = DeadLetters()
    entered, release = threading.Event(), threading.Event()
    ref = Sink.start(ActorContext(name="sink", dead_letters=dead_letters), entered=entered, release=release)
    ref.tell("block")
    assert entered.wait(5.0)
    ref.tell(RuntimeError("fails with three messages waiting"))
    for number in range(3):
        ref.tell(("waiting", number))

    release.set()

    assert wait_stopped(ref, 5.0)
    assert dead_letters.count == 3
    assert [letter.message for letter in dead_letters.recent] == [f"('waiting', {n})" for n in range(3)]
    assert {letter.reason for letter in dead_letters.recent} == {"the actor stopped before handling it"}


def test_a_failure_report_to_a_parent_that_is_gone_is_a_dead_letter():
    dead_letters = DeadLetters()
    parent = Sink.start()
    assert stop_actor(parent, timeout=5.0)
    child = Sink.start(ActorContext(name="orphan", parent=parent, dead_letters=dead_letters))

    child.tell(RuntimeError("nobody to tell"))

    assert wait_stopped(child, 5.0)
    assert dead_letters.count == 1
    assert "ChildExited(name='orphan'" in dead_letters.recent[0].message


def test_dead_letter_warnings_are_rate_limited_and_say_how_many_were_not_logged(clock, caplog):
    dead_letters = DeadLetters(log_interval=5.0, clock=clock)

    with caplog.at_level(logging.WARNING, logger="minos.networks.actors.deadletters"):
        for number in range(100):
            dead_letters.record("somebody", number, "testing")
        assert len(caplog.records) == 1
        clock.advance(5.0)
        dead_letters.record("somebody", "late", "testing")
        dead_letters.record("somebody", "later", "testing")
        dead_letters.flush_log()

    assert dead_letters.count == 102
    assert [record.getMessage() for record in caplog.records] == [
        "dead letter to somebody: testing: 0",
        "dead letter to somebody: testing: 'late' (99 more dead letters since the last report)",
        "1 more dead letters since the last report (102 in all)",
    ]


def test_only_the_most_recent_dead_letters_are_kept_and_long_messages_are_shortened():
    dead_letters = DeadLetters(keep=2)

    dead_letters.record("a", "x" * 1000, "testing")
    dead_letters.record("b", 2, "testing")
    dead_letters.record("c", 3, "testing")

    assert [letter.recipient for letter in dead_letters.recent] == ["b", "c"]
    assert dead_letters.count == 3
    dead_letters.record("d", "x" * 1000, "testing")
    assert len(dead_letters.recent[-1].message) == 200
    assert dead_letters.recent[-1].message.endswith("...")


def test_a_message_whose_repr_fails_is_still_counted():
    class Unprintable:
        def __repr__(self):
            raise RuntimeError("no repr")

    dead_letters = DeadLetters()

    dead_letters.record("a", Unprintable(), "testing")

    assert dead_letters.count == 1
    assert "Unprintable whose repr failed" in dead_letters.recent[0].message


def test_an_ask_waiting_in_the_mailbox_of_an_actor_that_failed_learns_why_it_died():
    entered, release = threading.Event(), threading.Event()
    ref = Sink.start(ActorContext(name="sink"), entered=entered, release=release)
    ref.tell("block")
    assert entered.wait(5.0)
    ref.tell(RuntimeError("the reason"))
    waiting = ref.ask("are you there?", block=False)

    release.set()

    with pytest.raises(
        pykka.ActorDeadError, match=r"'are you there\?': it failed with RuntimeError"
    ) as raised:
        waiting.get(timeout=5.0)
    assert str(raised.value.__cause__) == "the reason"
    assert wait_stopped(ref, 5.0)
