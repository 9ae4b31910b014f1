"""eager_task: the first step runs inline, a Task is made only for a coroutine that suspends."""

import asyncio
import contextvars

import pytest

from minos.networks.actors.eager import eager_task

VARIABLE: contextvars.ContextVar[str] = contextvars.ContextVar("VARIABLE", default="unset")


async def test_a_coroutine_that_never_suspends_runs_to_its_end_inline_and_makes_no_task():
    steps = []

    async def handler():
        steps.append("ran")

    before = asyncio.all_tasks()
    assert eager_task(handler()) is None
    assert steps == ["ran"]  # already, before anything else ran in the loop
    assert asyncio.all_tasks() == before


async def test_a_coroutine_that_suspends_runs_its_first_step_inline_then_a_task_drives_the_rest():
    steps = []
    first = asyncio.get_running_loop().create_future()
    second = asyncio.get_running_loop().create_future()

    async def handler():
        steps.append("before")
        steps.append(await first)
        steps.append(await second)

    task = eager_task(handler())
    assert isinstance(task, asyncio.Task)
    assert steps == ["before"]
    first.set_result("first")
    second.set_result("second")
    assert await asyncio.wait_for(task, 5) is None
    assert steps == ["before", "first", "second"]


async def test_what_a_coroutine_raises_before_suspending_reaches_the_caller_and_nothing_is_scheduled():
    async def handler():
        raise ValueError("broken at once")

    before = asyncio.all_tasks()
    with pytest.raises(ValueError, match="broken at once"):
        eager_task(handler())
    assert asyncio.all_tasks() == before


async def test_what_a_coroutine_raises_after_suspending_ends_its_task():
    resumed = asyncio.get_running_loop().create_future()

    async def handler():
        await resumed
        raise ValueError("broken later")

    task = eager_task(handler())
    assert task is not None
    resumed.set_result(None)
    with pytest.raises(ValueError, match="broken later"):
        await asyncio.wait_for(task, 5)


async def test_an_error_set_on_what_the_coroutine_awaits_is_raised_inside_it():
    failing = asyncio.get_running_loop().create_future()
    caught = []

    async def handler():
        try:
            await failing
        except KeyError as error:
            caught.append(error)

    task = eager_task(handler())
    assert task is not None
    failing.set_exception(KeyError("gone"))
    await asyncio.wait_for(task, 5)
    assert [str(error) for error in caught] == ["'gone'"]


async def test_cancelling_the_task_throws_cancelled_error_into_the_coroutine_where_it_waits():
    loop = asyncio.get_running_loop()
    started, waiting, never = loop.create_future(), loop.create_future(), loop.create_future()
    seen = []

    async def handler():
        await started  # suspends inline: the Task takes over from here
        waiting.set_result(None)
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")

    task = eager_task(handler())
    assert task is not None
    started.set_result(None)
    await asyncio.wait_for(waiting, 5)  # the Task drives the coroutine: it now waits on ``never``
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert task.cancelled()
    assert seen == ["cancelled", "cleaned up"]
    assert never.cancelled()  # the future it waited on was cancelled with it, as for any Task


async def test_a_coroutine_that_handles_its_cancellation_may_finish_normally():
    loop = asyncio.get_running_loop()
    started, waiting, never = loop.create_future(), loop.create_future(), loop.create_future()

    async def handler():
        await started
        waiting.set_result(None)
        try:
            await never
        except asyncio.CancelledError:
            return

    task = eager_task(handler())
    assert task is not None
    started.set_result(None)
    await asyncio.wait_for(waiting, 5)
    task.cancel()
    assert await asyncio.wait_for(task, 5) is None
    assert not task.cancelled()


async def test_the_first_step_and_the_task_share_one_context_apart_from_the_callers():
    resumed = asyncio.get_running_loop().create_future()
    seen = []

    async def handler():
        token = VARIABLE.set("handler")
        await resumed
        seen.append(VARIABLE.get())
        VARIABLE.reset(token)  # a token from the first step: valid only in the same context

    task = eager_task(handler())
    assert task is not None
    assert VARIABLE.get() == "unset"  # what the first step set stays out of the caller's context
    resumed.set_result(None)
    await asyncio.wait_for(task, 5)
    assert seen == ["handler"]
    assert VARIABLE.get() == "unset"
