"""LoopActor: an actor that owns one asyncio event loop in a dedicated I/O thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar, TypeVarTuple

from ..exceptions import MinosNetworkException
from .actor import THREAD_PREFIX, Actor, ActorContext
from .bridge import ActorTimeoutError
from .eventloop import new_event_loop

__all__ = ["BorrowedLoop", "LoopActor", "LoopClosedError"]

logger = logging.getLogger(__name__)

R = TypeVar("R")
Ts = TypeVarTuple("Ts")

_JOIN_MARGIN = 0.5  # seconds granted to the loop thread, beyond cancel_timeout, to close its loop


class LoopClosedError(MinosNetworkException, RuntimeError):
    """Work was submitted to a LoopActor whose event loop is not running (not started yet, or stopping)."""


class BorrowedLoop:
    """A running event loop that a LoopActor uses instead of a thread of its own, e.g. the caller's.

    Build it in the loop's own thread (``BorrowedLoop.current()``). The actor then runs its I/O as
    tasks of that loop: a message handed over from that loop reaches the actor's socket without a
    thread hop. The loop's owner must keep it running until the actor has stopped (an actor stopping
    after its borrowed loop closed gives up within its timeouts, with an error logged).
    """

    __slots__ = ("loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.loop = loop
        self.thread = thread

    def __repr__(self) -> str:
        return f"<BorrowedLoop of {self.thread.name}>"

    @classmethod
    def current(cls) -> BorrowedLoop:
        """The running loop of the calling thread.

        Raises:
            RuntimeError: No event loop runs in this thread.
        """
        return cls(asyncio.get_running_loop(), threading.current_thread())


class LoopActor(Actor):
    """An actor whose I/O runs in an asyncio event loop on a thread of its own.

    Two threads serve one LoopActor, and each owns different things:

    - **actor thread** (``minos-<name>``, pykka's): runs ``on_start``, ``on_stop``, ``on_failure`` and
      the mailbox's messages (control: settings, subscriptions, supervision). It may call
      :meth:`submit` and :meth:`call_in_loop`, and must not touch anything the loop owns.
    - **loop thread** (``minos-<name>-loop``): runs :meth:`on_loop_start`, :meth:`on_loop_stop` and all
      submitted coroutines. It alone creates, uses and closes the actor's ZeroMQ sockets and every
      other object bound to the loop.
    - **any other thread** may call :meth:`submit`, which is thread-safe.

    A LoopActor given a :class:`BorrowedLoop` has no loop thread of its own: the borrowed loop's thread
    plays that part, its I/O runs as tasks there, and stopping it cancels only the tasks it submitted.

    Life cycle. ``on_start`` starts the loop thread, waits (``start_timeout``) until the loop runs,
    then runs ``await on_loop_start()`` in it (``start_timeout`` again). Stopping, and failing too,
    runs ``await on_loop_stop()`` (``stop_timeout``, then it is cancelled), cancels the tasks left in
    the loop and gives them ``cancel_timeout`` to unwind, closes the loop and joins its thread. No step
    waits without a bound: a loop thread blocked by synchronous code is logged as an error and left
    behind (it is a daemon thread). If ``on_loop_start`` fails, ``on_loop_stop`` is not run (clean up
    there what it opened), the loop is closed and the actor fails.

    A subclass overriding ``on_start`` calls ``super().on_start()`` first; one overriding ``on_stop``
    or ``on_failure`` calls ``super()`` last, since the loop is gone after that.

    Args:
        context: Name, parent and dead-letter sink (see :class:`~minos.networks.actors.Actor`).
        start_timeout: Seconds for the loop to come up, and again for ``on_loop_start``.
        stop_timeout: Seconds ``on_loop_stop`` may take before it is cancelled.
        cancel_timeout: Seconds the tasks left at stop get to handle their cancellation.
        borrow: Run in this loop (already running, owned by someone else) instead of a thread of its own.
    """

    def __init__(
        self,
        context: ActorContext | None = None,
        *,
        start_timeout: float = 5.0,
        stop_timeout: float = 5.0,
        cancel_timeout: float = 1.0,
        borrow: BorrowedLoop | None = None,
    ) -> None:
        super().__init__(context)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.cancel_timeout = cancel_timeout
        self._borrowed = borrow
        self._tasks: set[asyncio.Task[Any]] = set()  # submitted, for a borrowed loop's stop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._gate = threading.Lock()  # guards _accepting, read by submitters, written by the loop thread
        self._accepting = False
        self._loop_stopping = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The actor's event loop; from other threads use only its thread-safe methods.

        Raises:
            LoopClosedError: The loop has not been started yet.
        """
        if self._loop is None:
            raise LoopClosedError(f"{self} has no event loop yet; it starts in on_start")
        return self._loop

    @property
    def loop_thread(self) -> threading.Thread | None:
        """The thread running the loop, or None before ``on_start``."""
        return self._loop_thread

    async def on_loop_start(self) -> None:
        """Set up what the loop owns (open sockets, start tasks); runs in the loop, before any message."""

    async def on_loop_stop(self) -> None:
        """Release what the loop owns (close sockets with a bounded linger); runs in the loop at stop."""

    def start_bound(self) -> float:
        # The loop comes up, on_loop_start runs (start_timeout each), and on failure the loop is closed.
        return 2 * self.start_timeout + self.cancel_timeout + _JOIN_MARGIN

    def on_start(self) -> None:
        self._start_loop()
        try:
            self.call_in_loop(self.on_loop_start, timeout=self.start_timeout)
        except BaseException:
            self._stop_loop(run_on_loop_stop=False)
            raise

    def on_stop(self) -> None:
        self._stop_loop(run_on_loop_stop=True)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_loop(run_on_loop_stop=True)

    def _on_thread_exit(self) -> None:
        # The safety net: a subclass that overrode on_stop or on_failure without calling super(), or an
        # on_start that failed before the loop, must not leave a loop thread behind.
        self._stop_loop(run_on_loop_stop=True)

    def submit(self, fn: Callable[[*Ts], Coroutine[Any, Any, R]], *args: *Ts) -> concurrent.futures.Future[R]:
        """Run ``await fn(*args)`` as a task in the actor's loop; callable from any thread.

        The coroutine is created on the loop thread, so nothing is left unawaited if the loop is
        closing. Cancelling the returned future cancels the task.

        Args:
            fn: A coroutine function.
            *args: Its arguments.

        Returns:
            A future of the coroutine's result; it fails with :class:`LoopClosedError` if the loop
            stops before the task starts.

        Raises:
            LoopClosedError: The loop is not running.
        """
        result: concurrent.futures.Future[R] = concurrent.futures.Future()
        loop = self.loop

        def start() -> None:  # on the loop thread
            if result.cancelled():
                return
            if not self._accepting:
                _settle(result, error=LoopClosedError(f"{self} stopped its loop before {fn!r} could start"))
                return
            try:
                task = loop.create_task(fn(*args))
            except BaseException as error:
                _settle(result, error=error)
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda done: _copy_outcome(done, result))
            result.add_done_callback(lambda future: _cancel_task_if_cancelled(future, loop, task))

        with self._gate:
            if not self._accepting:
                raise LoopClosedError(f"{self} has no running loop to run {fn!r}")
            loop.call_soon_threadsafe(start)
        return result

    def call_in_loop(
        self, fn: Callable[[*Ts], Coroutine[Any, Any, R]], *args: *Ts, timeout: float = 30.0
    ) -> R:
        """Run ``await fn(*args)`` in the loop and block the calling thread until it finishes.

        Meant for the actor thread, e.g. a pykka message handler that needs the loop's sockets.
        Never call it from the loop thread: that would wait on itself.

        Args:
            fn: A coroutine function.
            *args: Its arguments.
            timeout: Seconds to wait; then the task is cancelled.

        Returns:
            The coroutine's result.

        Raises:
            ActorTimeoutError: It did not finish within ``timeout`` (the task was cancelled).
            LoopClosedError: The loop is not running.
            RuntimeError: Called from the loop thread.
            Exception: Whatever the coroutine raised.
        """
        if threading.current_thread() is self._loop_thread:
            raise RuntimeError(f"call_in_loop({fn!r}) on {self}'s own loop thread would wait on itself")
        future = self.submit(fn, *args)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():
                return future.result()
            future.cancel()
            raise ActorTimeoutError(
                f"{fn!r} did not finish in the loop of {self} within {timeout} s and was cancelled"
            ) from None

    def _start_loop(self) -> None:
        if self._borrowed is not None:
            borrowed = self._borrowed
            if borrowed.loop.is_closed() or not borrowed.thread.is_alive():
                raise LoopClosedError(
                    f"{self} cannot borrow the loop of {borrowed.thread.name}: it is closed"
                )
            self._loop, self._loop_thread = borrowed.loop, borrowed.thread
            with self._gate:
                self._accepting = True
            return
        loop = new_event_loop()
        running = threading.Event()
        thread = threading.Thread(
            target=self._run_loop,
            args=(loop, running),
            name=f"{THREAD_PREFIX}{self.actor_name}-loop",
            daemon=True,  # a loop thread stuck in synchronous code must not hold the process at exit
        )
        self._loop, self._loop_thread = loop, thread
        thread.start()
        if not running.wait(self.start_timeout):
            self._stop_loop(run_on_loop_stop=False)
            raise ActorTimeoutError(f"the event loop of {self} did not start within {self.start_timeout} s")

    def _run_loop(self, loop: asyncio.AbstractEventLoop, running: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            with self._gate:
                self._accepting = True
            loop.call_soon(running.set)
            loop.run_forever()
            with self._gate:
                self._accepting = False
            loop.run_until_complete(self._drain_loop())
        except BaseException:
            logger.exception("the event loop of %s failed", self)
        finally:
            with self._gate:
                self._accepting = False
            asyncio.set_event_loop(None)
            loop.close()

    async def _drain_loop(self) -> None:
        deadline = time.monotonic() + self.cancel_timeout
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.cancel_timeout)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("a task left in %s's loop failed", self, exc_info=task.exception())
            if pending:
                logger.error(
                    "%d tasks in %s's loop ignored cancellation for %s s and are abandoned: %r",
                    len(pending),
                    self,
                    self.cancel_timeout,
                    pending,
                )
        await asyncio.get_running_loop().shutdown_asyncgens()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await asyncio.get_running_loop().shutdown_default_executor()
        except TimeoutError:
            logger.error("the default executor of %s's loop did not shut down in time", self)

    def _stop_loop(self, *, run_on_loop_stop: bool) -> None:
        thread, loop = self._loop_thread, self._loop
        if thread is None or loop is None or self._loop_stopping:
            return
        self._loop_stopping = True
        if self._borrowed is not None:
            self._leave_borrowed_loop(run_on_loop_stop=run_on_loop_stop)
            return
        if run_on_loop_stop:
            self._run_on_loop_stop()
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass  # already closed
        bound = self.cancel_timeout + _JOIN_MARGIN
        thread.join(bound)
        if thread.is_alive():
            logger.error(
                "the loop thread %s of %s did not end within %s s (synchronous code blocking the loop?); "
                "leaving it behind",
                thread.name,
                self,
                bound,
            )

    def _run_on_loop_stop(self) -> None:
        try:
            self.call_in_loop(self.on_loop_stop, timeout=self.stop_timeout)
        except ActorTimeoutError:
            logger.error("on_loop_stop of %s did not finish within %s s; cancelled", self, self.stop_timeout)
        except LoopClosedError:
            pass  # the loop already ended (it failed); nothing left to run it in
        except Exception:
            logger.exception("on_loop_stop of %s failed", self)

    def _leave_borrowed_loop(self, *, run_on_loop_stop: bool) -> None:
        """Run ``on_loop_stop``, then cancel what this actor submitted; the loop itself runs on."""
        if run_on_loop_stop:
            self._run_on_loop_stop()
        try:
            self.call_in_loop(self._cancel_submitted, timeout=self.cancel_timeout + _JOIN_MARGIN)
        except (ActorTimeoutError, LoopClosedError):
            logger.error("%s could not cancel its tasks in the borrowed loop (closed or blocked?)", self)
        except Exception:
            logger.exception("cancelling the tasks of %s failed", self)
        with self._gate:
            self._accepting = False

    async def _cancel_submitted(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current and not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.cancel_timeout)
            if pending:
                logger.error("%d tasks of %s ignored cancellation and are abandoned", len(pending), self)


def _settle(result: concurrent.futures.Future[R], *, error: BaseException) -> None:
    try:
        result.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by its owner meanwhile


def _copy_outcome(task: asyncio.Task[R], result: concurrent.futures.Future[R]) -> None:
    if result.cancelled():
        return
    try:
        if task.cancelled():
            result.cancel()
        elif (error := task.exception()) is not None:
            result.set_exception(error)
        else:
            result.set_result(task.result())
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by its owner meanwhile


def _cancel_task_if_cancelled(
    future: concurrent.futures.Future[R], loop: asyncio.AbstractEventLoop, task: asyncio.Task[R]
) -> None:
    if not future.cancelled():
        return
    try:
        loop.call_soon_threadsafe(task.cancel)
    except RuntimeError:
        pass  # the loop is closed and the task with it
