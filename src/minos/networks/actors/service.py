"""ActorService: a supervised group of actors, started and stopped from asyncio code without blocking it."""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from types import TracebackType
from typing import Any, Self

import pykka

from .actor_system import ActorSystem
from .supervisor import DEFAULT_RESTART_POLICY, ChildSpec, EscalationError, RestartPolicy, UnknownChildError

__all__ = ["ActorService", "StartStop"]

logger = logging.getLogger(__name__)

_running: weakref.WeakSet[ActorService] = weakref.WeakSet()


class StartStop:
    """``async with`` for a component with ``start()`` and ``stop()``: started on entry, stopped on exit.

    It also gives the component minos 0.7's life cycle (``SetupMixin``), for code written against it:
    ``setup()`` starts it unless already set up, ``destroy()`` stops it (``stop()`` is idempotent), and
    ``already_setup`` / ``already_destroyed`` tell whether ``setup()`` (or entering ``async with``) ran
    more recently than ``destroy()`` (or leaving it). ``start()`` and ``stop()`` called directly do not
    change them.
    """

    _already_setup = False  # a class default, so subclasses need not call an __init__ of ours

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> object:
        raise NotImplementedError

    @property
    def already_setup(self) -> bool:
        """Whether ``setup()`` ran and ``destroy()`` has not run since (minos 0.7's ``SetupMixin``)."""
        return self._already_setup

    @property
    def already_destroyed(self) -> bool:
        """The opposite of ``already_setup``, as in minos 0.7."""
        return not self._already_setup

    async def setup(self) -> None:
        """minos 0.7's name for :meth:`start`; does nothing when already set up."""
        if not self._already_setup:
            await self.start()
            self._already_setup = True

    async def destroy(self) -> None:
        """minos 0.7's name for :meth:`stop`."""
        await self.stop()
        self._already_setup = False

    async def __aenter__(self) -> Self:
        await self.setup()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.destroy()


class ActorService(StartStop):
    """Actors under a supervisor of their own, started and stopped from asyncio code.

    Starting and stopping never block the caller's event loop. A crashed actor is restarted (at most
    ``policy.max_restarts`` times within ``policy.within_seconds``, then the supervisor gives up and
    logs it). A service left running when the interpreter exits is stopped then, so a forgotten
    ``stop()`` never holds the process open.

    Args:
        name: Names the supervisor (``minos-<name>-supervisor``).
        children: The actors, started in order and stopped in reverse.
        policy: The restart intensity.
    """

    def __init__(self, name: str, children: list[ChildSpec], *, policy: RestartPolicy | None = None) -> None:
        self.name = name
        self._children = children
        self._policy = policy
        self._system: ActorSystem | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        """Whether the service was started and not stopped."""
        return self._system is not None

    def mailboxes(self) -> dict[str, int]:
        """How many messages wait in each actor's mailbox now, the supervisor's included, by actor name.

        A snapshot readable from any thread (for metrics); empty while the service is stopped.
        """
        system = self._system
        if system is None:
            return {}
        depths = {system.name: _depth(system.root)}
        for name in system.directory.names():
            try:
                depths[name] = _depth(system.directory.get(name))
            except UnknownChildError:  # not started yet: nothing waits for it
                continue
        return depths

    async def start(self) -> None:
        """Start the actors, each once the one before it has started (idempotent).

        Raises:
            Exception: What the actor that did not start raised (e.g. ``BrokerUnavailableError`` naming
                the endpoint); those already started were stopped again.
        """
        async with self._lock:
            if self._system is not None:
                return
            system = ActorSystem(
                self._children, name=f"{self.name}-supervisor", policy=self._policy or DEFAULT_RESTART_POLICY
            )
            failed: BaseException | None = None
            try:
                await system.start_async()
            except EscalationError as escalation:
                failed = escalation.child_error()
                if failed is escalation:
                    raise
            if failed is not None:
                raise failed  # outside the except block: the child's error, without the escalation around it
            self._system = system
            _running.add(self)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop the actors, letting in-flight work finish within their stop timeouts (idempotent)."""
        async with self._lock:
            system, self._system = self._system, None
            if system is None:
                return
            _running.discard(self)
            stuck = await system.stop_async(timeout)
            if stuck:
                logger.error("%r: actors still busy after stop: %s", self, ", ".join(stuck))

    def _stop_at_exit(self) -> None:
        system, self._system = self._system, None
        if system is not None:
            system.stop()


def _depth(ref: pykka.ActorRef[Any]) -> int:
    # A ThreadingActor's inbox is a queue.Queue; pykka's ActorInbox protocol does not promise qsize().
    qsize = getattr(ref.actor_inbox, "qsize", None)
    return int(qsize()) if qsize is not None else 0


def _stop_all_at_exit() -> None:
    for service in list(_running):
        try:
            service._stop_at_exit()
        except Exception:
            logger.exception("stopping %r at exit failed", service)


# Runs before the interpreter joins non-daemon threads (plain atexit runs after, too late to help).
threading._register_atexit(_stop_all_at_exit)  # type: ignore[attr-defined]
