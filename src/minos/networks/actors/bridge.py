"""Awaiting pykka futures from asyncio without blocking the event loop thread.

pykka's own ``Future.__await__`` calls a blocking ``get()`` on the loop thread, which freezes every
other task until the actor answers: never ``await`` a pykka future directly. pykka 4.5's futures
have no done-callbacks either, so :class:`ReplyFuture` adds them, and every
:class:`~minos.networks.actors.Actor` hands out ReplyFutures for its asks and proxy calls. When the
actor answers, a callback on the actor thread passes the outcome to the loop with
``call_soon_threadsafe``: one thread hop, no thread parked per await. Futures without callbacks
(from plain pykka actors, from ``ActorRef.stop(block=False)``, or made by ``join``/``filter``/
``reduce``) are waited for in a helper thread named ``minos-await-<n>``; give those a timeout.

Example::

    reply = await ask(ref, GetChild("publisher"), timeout=5.0)
    total = await call(ref, "add", 2, 3, timeout=1.0)
    total = await await_future(ref.proxy().add(2, 3), timeout=1.0)   # same, via pykka's proxy
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import pykka
from pykka.messages import ProxyCall

from ..exceptions import MinosNetworkException

__all__ = ["ActorTimeoutError", "ReplyFuture", "ask", "await_future", "call"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M")

ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]

_await_thread_ids = itertools.count(1)


class ActorTimeoutError(MinosNetworkException, TimeoutError):
    """An actor did not answer, start or stop within the time it was given."""


class ReplyFuture(pykka.ThreadingFuture[T]):
    """A pykka future that calls back when its value is set.

    It behaves exactly like :class:`pykka.ThreadingFuture` (``get()`` blocks, values are not copied)
    and adds :meth:`add_done_callback`. :class:`~minos.networks.actors.Actor` creates one for every
    ``ask`` and proxy call, which is what lets :func:`await_future` wait without a thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks_lock = threading.Lock()
        self._callbacks: list[Callable[[ReplyFuture[T]], None]] = []
        self._done = False
        self._hooked = False

    def __repr__(self) -> str:
        return f"<ReplyFuture {'done' if self._done else 'pending'}>"

    @property
    def observable(self) -> bool:
        """Whether :meth:`add_done_callback` will fire (False once a pykka get hook is set)."""
        return not self._hooked

    def done(self) -> bool:
        """Return whether a value or an exception has been set."""
        return self._done

    def add_done_callback(self, callback: Callable[[ReplyFuture[T]], None]) -> None:
        """Call ``callback(self)`` once the future is resolved.

        The callback runs on the thread that resolves the future (usually the actor's own thread,
        right after its handler returned), or at once on the calling thread if the future is already
        resolved. It must be quick and must not block; what it raises is logged and swallowed, because
        an exception there would break the actor that resolved the future.

        Args:
            callback: Receives this future; ``callback(f)`` may call ``f.get(timeout=0)``.
        """
        with self._callbacks_lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        _run_callback(callback, self)

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._resolved()

    def set_exception(self, exc_info: ExcInfo | None = None) -> None:
        super().set_exception(exc_info if exc_info is not None else sys.exc_info())
        self._resolved()

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        with self._callbacks_lock:
            self._hooked = True
        super().set_get_hook(func)

    def map(self, func: Callable[[T], M]) -> ReplyFuture[M]:
        """Return a future of ``func(value)``, computed on the resolving thread as soon as this resolves.

        Unlike pykka's lazy ``map``, the result stays observable, so it can be awaited with
        :func:`await_future` without a helper thread. An exception raised by ``func`` or held by this
        future becomes the exception of the returned one.
        """
        mapped: ReplyFuture[M] = ReplyFuture()

        def apply(source: ReplyFuture[T]) -> None:
            try:
                value = func(source.get(timeout=0))
            except Exception:
                mapped.set_exception()
            else:
                mapped.set(value)

        self.add_done_callback(apply)
        return mapped

    def _resolved(self) -> None:
        with self._callbacks_lock:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _run_callback(callback, self)


def _run_callback(callback: Callable[[ReplyFuture[T]], None], future: ReplyFuture[T]) -> None:
    try:
        callback(future)
    except Exception:
        logger.exception("a ReplyFuture done-callback %r raised; ignored", callback)


async def await_future(
    future: pykka.Future[T],
    timeout: float | None = None,
    *,
    what: str | Callable[[], str] = "a pykka future",
) -> T:
    """Wait for a pykka future from a coroutine without blocking the event loop.

    Cancelling the awaiting task, or a timeout, only stops the waiting: the actor is not interrupted,
    finishes its handler and its answer is discarded.

    Args:
        future: From ``ref.ask(message, block=False)``, a proxy call, or :func:`ReplyFuture.map`.
        timeout: Seconds to wait; None waits for as long as it takes.
        what: What is being awaited, for the timeout message (a callable is only called on timeout).

    Returns:
        The value the actor answered.

    Raises:
        ActorTimeoutError: No answer within ``timeout`` (also a :class:`TimeoutError`).
        pykka.ActorDeadError: The actor was dead or stopped before handling the message.
        Exception: Whatever the actor's handler raised, as that same exception.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:  # on the loop thread
        if waiter.done():  # cancelled or timed out meanwhile: nobody wants the answer any more
            return
        if error is None:
            waiter.set_result(value)
        elif isinstance(error, StopIteration):  # asyncio futures refuse StopIteration
            waiter.set_exception(RuntimeError(f"the actor raised {error!r}"))
        else:
            waiter.set_exception(error)

    def on_done(done: pykka.Future[T]) -> None:  # on the thread that resolved the future
        value: Any = None
        error: BaseException | None = None
        try:
            value = done.get(timeout=0)
        except BaseException as raised:
            error = raised
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    if isinstance(future, ReplyFuture) and future.observable:
        future.add_done_callback(on_done)
    else:
        _wait_in_thread(future, timeout, on_done)

    try:
        async with asyncio.timeout(timeout) as scope:
            return await waiter
    except TimeoutError:
        if not scope.expired():
            raise  # the actor itself raised TimeoutError
        described = what() if callable(what) else what
        raise ActorTimeoutError(
            f"{described} did not answer within {timeout} s; the actor may be busy or stuck in a handler "
            "(it is not interrupted; give it more time or look at what it is doing)"
        ) from None


def _wait_in_thread(
    future: pykka.Future[T], timeout: float | None, on_done: Callable[[pykka.Future[T]], None]
) -> None:
    def wait() -> None:
        try:
            future.get(timeout=timeout)
        except pykka.Timeout:
            return  # the awaiting coroutine times out on its own
        except BaseException:
            pass  # on_done fetches and forwards the exception
        on_done(future)

    thread = threading.Thread(target=wait, name=f"minos-await-{next(_await_thread_ids)}", daemon=True)
    thread.start()


async def ask(
    ref: pykka.ActorRef[Any],
    message: object,
    *,
    timeout: float | None = None,
) -> Any:
    """Send ``message`` to the actor and await its answer without blocking the event loop.

    Args:
        ref: The actor; it answers from ``on_receive``.
        message: Any object; it is not copied, so send immutable ones.
        timeout: Seconds to wait for the answer; None waits for as long as it takes.

    Returns:
        What the actor's ``on_receive`` returned.

    Raises:
        ActorTimeoutError: No answer within ``timeout``.
        pykka.ActorDeadError: The actor is not running.
        Exception: Whatever the actor's handler raised.
    """
    future: pykka.Future[Any] = ref.ask(message, block=False)
    return await await_future(future, timeout, what=lambda: f"{ref} asked {message!r}")


async def call(
    ref: pykka.ActorRef[Any],
    method: str,
    *args: Any,
    timeout: float | None = None,
) -> Any:
    """Call ``method(*args)`` on the actor's own thread and await its result.

    Equivalent to ``await await_future(ref.proxy().method(*args))`` without building a proxy (pykka
    introspects every attribute of the actor to build one).

    Args:
        ref: The actor.
        method: Name of a method of the actor.
        *args: Positional arguments for it.
        timeout: Seconds to wait for the result; None waits for as long as it takes.

    Returns:
        What the method returned.

    Raises:
        ActorTimeoutError: No result within ``timeout``.
        pykka.ActorDeadError: The actor is not running.
        AttributeError: The actor has no such attribute.
        Exception: Whatever the method raised.
    """
    future: pykka.Future[Any] = ref.ask(ProxyCall(attr_path=(method,), args=args, kwargs={}), block=False)
    return await await_future(future, timeout, what=lambda: f"{ref}.{method}()")
