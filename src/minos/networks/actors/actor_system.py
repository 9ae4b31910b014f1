"""ActorSystem: starts and stops a tree of actors under one root supervisor, within bounded time.

Example::

    specs = [ChildSpec("store", Store.start), ChildSpec("publisher", partial(Publisher.start, endpoint=url))]
    with ActorSystem(specs) as system:             # or: async with ActorSystem(specs) as system:
        system.child("publisher").tell(Publish(message))
        assert system.dead_letters.count == 0
    assert threads() == []                          # every minos- thread has ended

Stopping never hangs: children stop last started first, each within its ``ChildSpec.stop_timeout``
and all within the ``timeout`` given to :meth:`ActorSystem.stop`; an actor stuck in a handler is
logged and named in the result, and stops on its own once the handler returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import pykka

from .actor import THREAD_PREFIX, ActorContext, await_stopped, stop_actor, wait_stopped
from .bridge import ActorTimeoutError, ask
from .deadletters import DeadLetters
from .supervisor import (
    DEFAULT_RESTART_POLICY,
    ChildDirectory,
    ChildHandle,
    ChildSpec,
    EscalationError,
    GetChildren,
    RestartPolicy,
    StopChildren,
    Supervisor,
)

__all__ = ["ActorSystem", "threads"]

logger = logging.getLogger(__name__)

_STOPPED_AFTER_START = 5.0  # seconds for a root that failed to start to finish stopping its children


def threads() -> list[threading.Thread]:
    """The live threads started by minos.networks (their names begin with ``minos-``).

    Actor threads are named ``minos-<actor name>``, the event loop of a
    :class:`~minos.networks.actors.LoopActor` runs in ``minos-<actor name>-loop``, and a helper
    awaiting a foreign pykka future in ``minos-await-<n>``.
    """
    return [thread for thread in threading.enumerate() if thread.name.startswith(THREAD_PREFIX)]


class ActorSystem:
    """A root supervisor with named children, started and stopped as one.

    Use it as a context manager, ``with`` from threads or ``async with`` from coroutines (the async
    form awaits the actors without blocking the loop; do not call :meth:`start` or :meth:`stop`
    on a loop thread, they block).

    Args:
        children: What the root supervisor starts, in order.
        name: The root supervisor's name (its thread is ``minos-<name>``).
        policy: The root's restart intensity.
        clock: Time source of the intensity window (tests pass a fake clock).
        on_escalate: Called, on the root's thread, when the root gives up; it must not block.
            Either way the error is kept in :attr:`escalation`.
        dead_letters: Where all actors of the tree record dead letters; a fresh counter by default.
        start_timeout: Seconds :meth:`start` waits for the root to have started all its children (each
            after the one before); None waits for as long as the root takes, which is bounded, since it
            waits for each child at most its ``ChildSpec.start_timeout`` or the child's own start bound
            (see ``wait_started``), so the error that comes back is the child's own.
        stop_timeout: Default bound of :meth:`stop`, in seconds.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        name: str = "root",
        policy: RestartPolicy = DEFAULT_RESTART_POLICY,
        clock: Callable[[], float] = time.monotonic,
        on_escalate: Callable[[EscalationError], None] | None = None,
        dead_letters: DeadLetters | None = None,
        start_timeout: float | None = None,
        stop_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self.directory = ChildDirectory()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._children = tuple(children)
        self._policy = policy
        self._clock = clock
        self._on_escalate = on_escalate
        self._escalation: EscalationError | None = None
        self._root: pykka.ActorRef[Supervisor] | None = None

    def __repr__(self) -> str:
        state = "not started" if self._root is None else ("running" if self._root.is_alive() else "stopped")
        return f"<ActorSystem {self.name!r} {state}, children {[spec.name for spec in self._children]}>"

    @property
    def root(self) -> pykka.ActorRef[Supervisor]:
        """The root supervisor.

        Raises:
            RuntimeError: The system was not started.
        """
        if self._root is None:
            raise RuntimeError(f"{self!r} was not started; call start() or use it as a context manager")
        return self._root

    @property
    def escalation(self) -> EscalationError | None:
        """Why the root supervisor gave up, or None while it has not."""
        return self._escalation

    def child(self, name: str) -> ChildHandle:
        """A handle on the root's child ``name`` that follows it across restarts."""
        return self.directory.handle(name, dead_letters=self.dead_letters)

    def start(self) -> Self:
        """Start the root supervisor and wait until it has started its children.

        Raises:
            EscalationError: A child did not start; everything started is stopped again.
            ActorTimeoutError: The root did not finish starting within ``start_timeout``.
        """
        root = self._spawn_root()
        try:
            root.ask(GetChildren(), block=True, timeout=self.start_timeout)
        except pykka.ActorDeadError:
            wait_stopped(root, _STOPPED_AFTER_START)
            if self._escalation is not None:
                raise self._escalation from self._escalation.__cause__
            raise
        except pykka.Timeout:
            self.stop()
            raise ActorTimeoutError(
                f"{self!r}: the root supervisor did not start its children within {self.start_timeout} s"
            ) from None
        return self

    async def start_async(self) -> Self:
        """Like :meth:`start`, awaiting the root without blocking the event loop."""
        root = self._spawn_root()
        try:
            await ask(root, GetChildren(), timeout=self.start_timeout)
        except pykka.ActorDeadError:
            await await_stopped(root, _STOPPED_AFTER_START)
            if self._escalation is not None:
                raise self._escalation from self._escalation.__cause__
            raise
        except ActorTimeoutError:
            await self.stop_async()
            raise
        return self

    def stop(self, timeout: float | None = None) -> tuple[str, ...]:
        """Stop every child, last started first, then the root; never waits longer than ``timeout``.

        Safe to call twice, or after the root escalated.

        Args:
            timeout: Seconds for the whole stop; :attr:`stop_timeout` if None.

        Returns:
            The names of the actors that did not stop in time (stuck in a handler); empty if all did.
        """
        if self._root is None:
            return ()
        root = self._root
        deadline, children_budget = self._stop_budget(timeout)
        stuck: list[str] = []
        try:
            stuck.extend(root.ask(StopChildren(children_budget), block=True, timeout=_remaining(deadline)))
        except pykka.ActorDeadError:
            pass  # the root already stopped, and stopped its children first
        except pykka.Timeout:
            stuck.append(self.name)
        if not stop_actor(root, timeout=_remaining(deadline)) and self.name not in stuck:
            stuck.append(self.name)
        return self._stopped(stuck)

    async def stop_async(self, timeout: float | None = None) -> tuple[str, ...]:
        """Like :meth:`stop`, awaiting the actors without blocking the event loop."""
        if self._root is None:
            return ()
        root = self._root
        deadline, children_budget = self._stop_budget(timeout)
        stuck: list[str] = []
        try:
            stuck.extend(await ask(root, StopChildren(children_budget), timeout=_remaining(deadline)))
        except pykka.ActorDeadError:
            pass  # the root already stopped, and stopped its children first
        except ActorTimeoutError:
            stuck.append(self.name)
        root.stop(block=False)  # its answer comes with a get hook, which only a thread could wait for
        stopped = await await_stopped(root, _remaining(deadline))
        if not stopped and self.name not in stuck:
            stuck.append(self.name)
        return self._stopped(stuck)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop_async()

    def _spawn_root(self) -> pykka.ActorRef[Supervisor]:
        if self._root is not None:
            raise RuntimeError(f"{self!r} was already started; an ActorSystem starts once")
        context = ActorContext(name=self.name, parent=None, dead_letters=self.dead_letters)
        self._root = Supervisor.start(
            context,
            children=self._children,
            policy=self._policy,
            clock=self._clock,
            on_escalate=self._escalated,
            directory=self.directory,
        )
        return self._root

    def _escalated(self, error: EscalationError) -> None:  # on the root's thread
        self._escalation = error
        if self._on_escalate is not None:
            self._on_escalate(error)

    def _stop_budget(self, timeout: float | None) -> tuple[float, float]:
        total = self.stop_timeout if timeout is None else timeout
        # Keep a little of the budget for the root itself, so the whole stop stays within `total`.
        return time.monotonic() + total, max(0.0, total - min(0.5, total / 10))

    def _stopped(self, stuck: list[str]) -> tuple[str, ...]:
        self.dead_letters.flush_log()
        if stuck:
            logger.error("%r stopped, except %s, stuck in a handler", self, ", ".join(map(repr, stuck)))
        return tuple(stuck)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
