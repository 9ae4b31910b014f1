"""Eager start: run a coroutine's first step at once, inline, and make a Task only if it suspends.

Most message handlers never suspend, and a Task per message costs more than the handling itself:
``asyncio.create_task`` schedules the first step for the next loop iteration, so even a coroutine
that never waits pays a callback, a wake-up and the Task's bookkeeping. ``eager_task`` runs that first
step in the caller's stack instead (Python 3.12's ``asyncio.eager_task_factory`` does the same for
every task of a loop; this does it for the calls that ask, on 3.11 too).

The first step runs in a fresh copy of the current context, and the Task (if any) keeps running in
that very context, so context variables the coroutine sets and resets stay in one context, and none
of them leaks into the caller's.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["eager_task"]


def eager_task(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coroutine`` until it first suspends; from there, a Task of the running loop drives it.

    Call it in the loop's thread, with the loop running.

    Returns:
        None when the coroutine finished without suspending; else the Task that drives the rest of it
        (cancel it to throw ``CancelledError`` into the coroutine where it waits). A Task cancelled
        before the loop first ran it ends without resuming the coroutine, which is then only closed
        when collected: cancel it after giving it a chance to run (a drain that waited first does).

    Raises:
        Exception: whatever the coroutine raised before suspending (nothing was scheduled).
    """
    context = contextvars.copy_context()
    try:
        blocked_on = context.run(coroutine.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_resume(coroutine, blocked_on), context=context)


class _Resume:
    """Drives a coroutine that already ran its first step inline, from where it stopped."""

    __slots__ = ("_blocked_on", "_coroutine")

    def __init__(self, coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> None:
        self._coroutine = coroutine
        self._blocked_on = blocked_on

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, to_yield = self._coroutine, self._blocked_on
        while True:
            try:
                value = yield to_yield
            except BaseException as error:  # cancellation and the like go to the coroutine
                try:
                    to_yield = coroutine.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    to_yield = coroutine.send(value)
                except StopIteration:
                    return


async def _resume(coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    await _Resume(coroutine, blocked_on)
