"""The base actor of minos.networks: a named thread, awaitable replies and failure reports to a parent.

pykka's ``ThreadingActor`` gives a mailbox and a thread. :class:`Actor` adds what the runtime needs:

- its thread is named ``minos-<name>``, so a test can tell this package's threads from others;
- its asks and proxy calls return :class:`~minos.networks.actors.ReplyFuture`, which coroutines can
  await without blocking their loop;
- when it fails (an exception in a ``tell`` handler, in ``on_stop`` or ``on_failure``) it tells its
  parent a :class:`ChildExited` carrying the error, after its thread has cleaned up, so a supervisor
  can restart it;
- what ``on_start`` raises goes to whoever waits for the start (:func:`wait_started`, which a
  supervisor always calls), not to pykka's log: that waiter reports it, so it is said once, by one;
- messages left in its mailbox when it stops, which pykka drops without a word, become dead letters.

An exception in an ``ask`` handler goes back to the asker and does not stop the actor (pykka's rule).
A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) makes pykka
stop every actor in the process.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

import pykka
from pykka.messages import ProxyGetAttr, _ActorStop  # pykka's stop message has no public name

from .bridge import ActorTimeoutError, ReplyFuture, await_future
from .deadletters import DeadLetters, short_repr, tell

__all__ = [
    "START_MARGIN",
    "THREAD_PREFIX",
    "Actor",
    "ActorContext",
    "ChildExited",
    "await_stopped",
    "stop_actor",
    "wait_started",
    "wait_stopped",
]

logger = logging.getLogger(__name__)

THREAD_PREFIX = "minos-"
"""Every thread this package starts has a name beginning with this."""

_actor_ids = itertools.count(1)

# pykka answers any ask only after on_start; reading an attribute needs no handler of the actor's.
_STARTED_PROBE = ProxyGetAttr(attr_path=("actor_urn",))


@dataclass(frozen=True, slots=True)
class ActorContext:
    """Where an actor sits in the tree: its name, who supervises it, where its dead letters go.

    Attributes:
        name: Names the actor in logs and its thread (``minos-<name>``); a supervisor gives a child
            the name of its :class:`~minos.networks.actors.ChildSpec`, the same after each restart.
        parent: The supervisor told about the actor's failures, or None.
        dead_letters: Where undelivered messages to and from this actor are recorded; a sink of its own
            when not given (an ``ActorSystem`` gives every actor of its tree the system's one).
    """

    name: str
    parent: pykka.ActorRef[Any] | None = None
    dead_letters: DeadLetters = field(default_factory=DeadLetters)


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Told by an actor to its parent when it failed; its thread has finished cleaning up.

    Attributes:
        name: The child's context name.
        actor_urn: Identifies the incarnation that failed, so a stale notice can be told apart.
        error: What made it fail.
    """

    name: str
    actor_urn: str
    error: BaseException


class _Lifecycle(NamedTuple):
    thread: threading.Thread
    started: ReplyFuture[None]  # set when on_start returned, or failed with what it raised
    ended: ReplyFuture[None]  # set when the thread has done all its work
    start_bound: float | None  # the actor's own bound on on_start (Actor.start_bound)


START_MARGIN = 1.0
"""Seconds :func:`wait_started` waits beyond an actor's own start bound, so the actor's error comes first."""


# Keyed by the ActorRef object (pykka makes one per actor), weakly: an entry lives as long as someone
# holds the ref, so a supervisor can learn how on_start went even after a quick death.
_lifecycles_lock = threading.Lock()
_lifecycles: weakref.WeakKeyDictionary[pykka.ActorRef[Any], _Lifecycle] = weakref.WeakKeyDictionary()


def _lifecycle(ref: pykka.ActorRef[Any]) -> _Lifecycle | None:
    with _lifecycles_lock:
        return _lifecycles.get(ref)


class Actor(pykka.ThreadingActor):
    """Base class of every actor in minos.networks.

    Subclass it like ``pykka.ThreadingActor`` and start it with the classmethod
    ``MyActor.start(...)`` (``MyActor(...).start()`` would quietly build a second instance).
    A subclass with its own ``__init__`` takes the context as its first parameter and passes it on,
    so a supervisor can start it with ``factory(context=...)``::

        class Publisher(Actor):
            def __init__(self, context: ActorContext | None = None, *, endpoint: str) -> None:
                super().__init__(context)
                self.endpoint = endpoint

    Hooks run on the actor's own thread. A subclass that overrides ``on_stop`` or ``on_failure``
    calls ``super()`` so base classes can release what they hold.

    Args:
        context: Name, parent and dead-letter sink; without one the actor is named
            ``<ClassName>-<n>``, has no parent and records its dead letters in a sink of its own
            (``actor.context.dead_letters``).
    """

    _lifecycle: _Lifecycle

    def __init__(self, context: ActorContext | None = None) -> None:
        super().__init__()
        self.context = context or ActorContext(name=f"{type(self).__name__}-{next(_actor_ids)}")
        self._failure: BaseException | None = None
        self._failed_to_start = False

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.context.name!r} ({self.actor_urn})"

    @property
    def actor_name(self) -> str:
        """The name from the actor's context."""
        return self.context.name

    def start_bound(self) -> float | None:
        """Seconds ``on_start`` takes at most when the actor bounds it itself (it fails with its own error
        after that), or None when it does not; read once, when the actor's thread starts.

        :func:`wait_started` waits at least this long (plus :data:`START_MARGIN`), so the actor's own
        error, which says what it waited for, reaches the caller rather than a bare timeout.
        """
        return None

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return ReplyFuture()

    def _start_actor_loop(self) -> None:
        thread = threading.Thread(
            target=self._run_actor_thread,
            name=f"{THREAD_PREFIX}{self.context.name}",
            daemon=self.use_daemon_thread,
        )
        self._lifecycle = _Lifecycle(thread, ReplyFuture(), ReplyFuture(), self.start_bound())
        with _lifecycles_lock:
            _lifecycles[self.actor_ref] = self._lifecycle
        thread.start()

    def _run_actor_thread(self) -> None:
        try:
            self._actor_loop()
        finally:
            try:
                self._on_thread_exit()
            except Exception:
                logger.exception("%s failed to release its resources", self)
            try:
                self._report_exit()
            finally:
                if not self._lifecycle.started.done():  # a BaseException escaped on_start
                    error = pykka.ActorDeadError(f"{self} ended before on_start finished")
                    self._lifecycle.started.set_exception(exc_info=(type(error), error, None))
                self._lifecycle.ended.set(None)

    def _on_thread_exit(self) -> None:
        """Release what a base class holds, whichever way the actor ended (hook for subclasses here)."""

    def _actor_loop_setup(self) -> None:
        # pykka's own setup would log what on_start raises with its traceback; here it goes to whoever
        # waits for the start (wait_started), which reports it, so it reaches one person once.
        try:
            self.on_start()
        except Exception as error:
            self._failed_to_start = True
            logger.debug("%s failed to start", self, exc_info=True)
            if self._failure is None:
                self._failure = error
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
        if self._failure is None:
            self._lifecycle.started.set(None)
        else:
            failure = self._failure
            self._lifecycle.started.set_exception(exc_info=(type(failure), failure, failure.__traceback__))

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # pykka calls this on every failure path (on_start, tell handler, on_stop, on_failure);
        # the first error is the one worth reporting.
        if self._failure is None and exception_value is not None:
            self._failure = exception_value
        super()._handle_failure(exception_type, exception_value, traceback)

    def _actor_loop_teardown(self) -> None:
        # Replaces pykka's, which drops the tells still in the mailbox without a word and answers the
        # asks with a bare ActorDeadError: tells become dead letters, and asks learn why the actor died.
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            if isinstance(envelope.message, _ActorStop):
                if envelope.reply_to is not None:
                    envelope.reply_to.set(None)
            elif envelope.reply_to is None:
                self.context.dead_letters.record(
                    str(self.actor_ref), envelope.message, "the actor stopped before handling it"
                )
            else:
                error = pykka.ActorDeadError(
                    f"{self} stopped before handling {short_repr(envelope.message)}"
                    + (f": it failed with {self._failure!r}" if self._failure is not None else "")
                )
                error.__cause__ = self._failure
                envelope.reply_to.set_exception(exc_info=(type(error), error, None))

    def _report_exit(self) -> None:
        parent = self.context.parent
        if self._failure is None or parent is None or self._failed_to_start:
            return  # a failed start went to the supervisor waiting for it (wait_started) instead
        notice = ChildExited(name=self.context.name, actor_urn=self.actor_urn, error=self._failure)
        tell(parent, notice, dead_letters=self.context.dead_letters)


def wait_started(ref: pykka.ActorRef[Any], timeout: float | None) -> None:
    """Block until the actor's ``on_start`` has returned; raise what it raised if it failed.

    An actor that bounds its own start (:meth:`Actor.start_bound`, e.g. a ``LoopActor`` opening a
    connection) is waited for at least that bound plus :data:`START_MARGIN`, so its own error (say, the
    broker at some endpoint did not answer) comes back rather than a timeout that hides it.

    For an actor that is not an :class:`Actor` this asks it for an attribute, which pykka answers
    after ``on_start``; such an actor dying in ``on_start`` may make this wait the whole ``timeout``.

    Args:
        ref: The actor, just started.
        timeout: Seconds to wait at least as long as the actor's own bound; None waits for as long as
            it takes.

    Raises:
        ActorTimeoutError: ``on_start`` did not finish within ``timeout``.
        pykka.ActorDeadError: A foreign actor died before answering.
        Exception: Whatever ``on_start`` raised.
    """
    lifecycle = _lifecycle(ref)
    try:
        if lifecycle is None:
            ref.ask(_STARTED_PROBE, block=True, timeout=timeout)
        else:
            if timeout is not None and lifecycle.start_bound is not None:
                timeout = max(timeout, lifecycle.start_bound + START_MARGIN)
            lifecycle.started.get(timeout=timeout)
    except pykka.Timeout:
        raise ActorTimeoutError(f"{ref} did not finish on_start within {timeout} s") from None


def wait_stopped(ref: pykka.ActorRef[Any], timeout: float | None) -> bool:
    """Block until the actor's thread has ended.

    For an actor that is not an :class:`Actor` this only checks that it is marked stopped.

    Args:
        ref: The actor, already asked to stop (this does not stop it).
        timeout: Seconds to wait at most; None waits for as long as it takes.

    Returns:
        True if the thread ended within ``timeout``.
    """
    lifecycle = _lifecycle(ref)
    if lifecycle is None:
        return not ref.is_alive()
    lifecycle.thread.join(timeout)
    return not lifecycle.thread.is_alive()


async def await_stopped(ref: pykka.ActorRef[Any], timeout: float | None) -> bool:
    """Wait until the actor's thread has ended, without blocking the event loop.

    Args:
        ref: The actor, already asked to stop (this does not stop it).
        timeout: Seconds to wait at most; None waits for as long as it takes.

    Returns:
        True if the thread finished its work within ``timeout`` (it may still be returning).
    """
    lifecycle = _lifecycle(ref)
    if lifecycle is None:
        return not ref.is_alive()
    try:
        await await_future(lifecycle.ended, timeout)
    except ActorTimeoutError:
        return False
    return True


def stop_actor(ref: pykka.ActorRef[Any], *, timeout: float | None) -> bool:
    """Ask the actor to stop and block until its thread has ended, for ``timeout`` seconds at most.

    Messages already in its mailbox are handled first (pykka's rule). An actor stuck in a handler
    does not stop in time: this returns False and leaves the stop request queued, so the actor stops
    as soon as the handler returns.

    Args:
        ref: The actor; stopping a dead actor is not an error.
        timeout: Seconds to wait at most; None waits for as long as it takes.

    Returns:
        True if the actor stopped and its thread ended within ``timeout``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        ref.stop(block=True, timeout=timeout)
    except pykka.Timeout:
        return False
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    return wait_stopped(ref, remaining)
