"""Handler and checker metadata: @handler.check, retries, and what the checkers' errors say."""

import asyncio

import pytest

from minos.networks.enroute import (
    CheckDecorator,
    CheckerMeta,
    CheckerWrapper,
    HandlerMeta,
    enroute,
)
from minos.networks.exceptions import NotSatisfiedCheckerException
from minos.networks.protocol import EnrouteDecoratorKind, InMemoryRequest


def test_handler_metadata_is_created_once_and_found_again_on_the_function():
    def handler(request):
        return None

    meta = HandlerMeta.of(handler)
    assert HandlerMeta.of(handler) is meta
    assert handler.meta is meta
    assert meta.func is handler
    assert meta.kind is None
    assert meta.qualname.endswith("handler")
    enroute.broker.event("a")(handler)
    assert meta.kind is EnrouteDecoratorKind.Event
    assert "BrokerEventEnrouteDecorator('a')" in repr(meta)


def test_a_checker_is_declared_in_the_class_body_and_stays_as_it_was():
    class Service:
        @enroute.broker.command("user.delete")
        async def delete(self, request):
            return None

        @delete.check(max_attempts=3, delay=0.5)
        def is_admin(self, request):
            """Only admins delete."""
            return True

    checker = Service.__dict__["is_admin"]
    assert checker.__name__ == "is_admin"
    assert checker.__doc__ == "Only admins delete."
    assert Service().is_admin(InMemoryRequest()) is True
    assert isinstance(checker, CheckerWrapper)
    meta = Service.delete.meta.checkers[0]
    assert isinstance(meta, CheckerMeta)
    assert (meta.func, meta.max_attempts, meta.delay) == (checker, 3, 0.5)
    assert meta.qualname.endswith("Service.is_admin")
    assert "max_attempts=3" in repr(meta)


def test_check_defaults_to_ten_attempts_a_tenth_of_a_second_apart():
    @enroute.broker.command("a")
    def handler(request):
        return None

    decorator = handler.check()
    assert isinstance(decorator, CheckDecorator)
    assert (decorator.max_attempts, decorator.delay) == (10, 0.1)


def test_checkers_are_kept_in_the_order_they_were_declared():
    @enroute.broker.command("a")
    def handler(request):
        return None

    @handler.check()
    def first(request):
        return True

    @handler.check()
    async def second(request):
        return True

    assert [meta.func for meta in handler.meta.checkers] == [first, second]


@pytest.mark.parametrize(
    ("max_attempts", "delay", "message"),
    [
        (0, 0.1, "max_attempts must be an int of at least 1, got 0"),
        (True, 0.1, "max_attempts must be an int of at least 1, got True"),
        (2.5, 0.1, "max_attempts must be an int of at least 1, got 2.5"),
        (3, -1, "delay must be a finite number of seconds, 0 or more, got -1"),
        (3, float("inf"), "delay must be a finite number of seconds, 0 or more, got inf"),
        (3, "1", "delay must be a finite number of seconds, 0 or more, got '1'"),
    ],
)
def test_a_checker_with_a_bad_retry_policy_is_refused_with_the_value(max_attempts, delay, message):
    @enroute.broker.command("a")
    def handler(request):
        return None

    with pytest.raises(ValueError, match=message):
        handler.check(max_attempts=max_attempts, delay=delay)


def test_a_handler_cannot_be_a_checker_and_a_checker_cannot_be_a_handler():
    @enroute.broker.command("a")
    def handler(request):
        return None

    @enroute.broker.command("b")
    def other(request):
        return None

    with pytest.raises(TypeError, match="is a handler; a handler cannot also be a checker"):
        handler.check()(other)

    @handler.check()
    def checker(request):
        return True

    with pytest.raises(TypeError, match="is a checker; a checker cannot also be a handler"):
        enroute.broker.command("c")(checker)


async def test_a_satisfied_checker_runs_once():
    calls = []

    def checker(request):
        calls.append(request)
        return True

    run = CheckerMeta(checker, max_attempts=3, delay=0).bind(checker, "Service.handler")
    request = InMemoryRequest("x")
    assert await run(request) is None
    assert calls == [request]


async def test_an_unsatisfied_checker_is_retried_until_it_is_satisfied():
    answers = iter([False, None, 0, True])
    calls = 0

    async def checker(request):
        nonlocal calls
        calls += 1
        return next(answers)

    await CheckerMeta(checker, max_attempts=5, delay=0).bind(checker, "Service.handler")(InMemoryRequest())
    assert calls == 4


async def test_a_checker_gives_up_after_its_last_attempt_and_the_error_names_it():
    calls = 0

    def is_admin(request):
        nonlocal calls
        calls += 1
        return False

    run = CheckerMeta(is_admin, max_attempts=3, delay=0).bind(is_admin, "tests.Service.delete")
    with pytest.raises(NotSatisfiedCheckerException) as caught:
        await run(InMemoryRequest())
    assert calls == 3
    checker = "test_a_checker_gives_up_after_its_last_attempt_and_the_error_names_it.<locals>.is_admin"
    assert str(caught.value) == (
        f"checker '{checker}' was not satisfied after 3 attempt(s) 0 s apart, so handler "
        "'tests.Service.delete' did not run; retry once its condition holds"
    )


async def test_a_checker_waiting_between_attempts_lets_the_event_loop_run():
    # The condition only becomes true when another task runs: a blocking wait would never see it.
    ready = asyncio.Event()

    async def make_ready():
        ready.set()

    def checker(request):
        return ready.is_set()

    task = asyncio.create_task(make_ready())
    await CheckerMeta(checker, max_attempts=1000, delay=0.001).bind(checker, "h")(InMemoryRequest())
    await task
    assert ready.is_set()


async def test_a_checker_that_raises_lets_the_error_through():
    def checker(request):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await CheckerMeta(checker, max_attempts=3, delay=0).bind(checker, "h")(InMemoryRequest())
