"""ActorService and PeerService: starting, stopping and reaching supervised actors from asyncio code."""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from functools import partial
from types import TracebackType
from typing import Self

from ..actors import DEFAULT_RESTART_POLICY, ActorSystem, ChildSpec, RestartPolicy
from .peer import ConnectionFactory, PeerActor, PeerHandle, SinkFactory, Subscription

__all__ = ["ActorService", "PeerService", "peer_spec"]

logger = logging.getLogger(__name__)

_running: weakref.WeakSet[ActorService] = weakref.WeakSet()


class ActorService:
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

    async def start(self) -> None:
        """Start the actors, each once the one before it has started (idempotent)."""
        async with self._lock:
            if self._system is not None:
                return
            system = ActorSystem(
                self._children, name=f"{self.name}-supervisor", policy=self._policy or DEFAULT_RESTART_POLICY
            )
            await system.start_async()
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

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _stop_at_exit(self) -> None:
        system, self._system = self._system, None
        if system is not None:
            system.stop()


def peer_spec(
    name: str,
    handle: PeerHandle,
    *,
    connect: ConnectionFactory,
    subscriptions: tuple[Subscription, ...] = (),
    sink: SinkFactory | None = None,
    window: int = 1000,
    close_timeout: float = 5.0,
) -> ChildSpec:
    """How a supervisor starts (and restarts) a PeerActor reached through ``handle``."""
    return ChildSpec(
        name,
        partial(
            PeerActor.start,
            connect=connect,
            handle=handle,
            subscriptions=subscriptions,
            sink=sink,
            window=window,
            close_timeout=close_timeout,
        ),
        stop_timeout=3 * close_timeout + 2,
    )


class PeerService(ActorService):
    """One PeerActor under a supervisor of its own; work queued on its handle survives restarts.

    Args:
        name: Names the actor and its threads (``minos-<name>``).
        connect: Builds the actor's connection.
        subscriptions: What the actor subscribes to.
        sink: Builds the receiver of the actor's deliveries.
        window: How many deliveries it may hold unacknowledged.
        close_timeout: Seconds in-flight work and the connection each get at stop.
        policy: The restart intensity.
    """

    def __init__(
        self,
        name: str,
        *,
        connect: ConnectionFactory,
        subscriptions: tuple[Subscription, ...] = (),
        sink: SinkFactory | None = None,
        window: int = 1000,
        close_timeout: float = 5.0,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.handle = PeerHandle(name)
        spec = peer_spec(
            name,
            self.handle,
            connect=connect,
            subscriptions=subscriptions,
            sink=sink,
            window=window,
            close_timeout=close_timeout,
        )
        super().__init__(name, [spec], policy=policy)


def _stop_all_at_exit() -> None:
    for service in list(_running):
        try:
            service._stop_at_exit()
        except Exception:
            logger.exception("stopping %r at exit failed", service)


# Runs before the interpreter joins non-daemon threads (plain atexit runs after, too late to help).
threading._register_atexit(_stop_all_at_exit)  # type: ignore[attr-defined]
