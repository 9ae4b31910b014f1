"""PeerService: one supervised PeerActor, and peer_spec, how a supervisor starts one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pykka

from ..actors import ActorContext, ActorService, BorrowedLoop, ChildSpec, RestartPolicy
from .peer import ConnectionFactory, PeerActor, PeerHandle, SinkFactory, Subscription

__all__ = ["PeerService", "peer_spec"]

logger = logging.getLogger(__name__)


def peer_spec(
    name: str,
    handle: PeerHandle,
    *,
    connect: ConnectionFactory,
    subscriptions: tuple[Subscription, ...] = (),
    sink: SinkFactory | None = None,
    window: int = 1000,
    close_timeout: float = 5.0,
    borrow: Callable[[], BorrowedLoop | None] | None = None,
) -> ChildSpec:
    """How a supervisor starts (and restarts) a PeerActor reached through ``handle``.

    ``borrow``, when given, is asked at each (re)start for the loop the actor runs in (None: its own).
    """
    start = partial(
        PeerActor.start,
        connect=connect,
        handle=handle,
        subscriptions=subscriptions,
        sink=sink,
        window=window,
        close_timeout=close_timeout,
    )
    if borrow is not None:
        borrowed = borrow

        def start_in_borrowed_loop(*, context: ActorContext) -> pykka.ActorRef[Any]:
            return start(context=context, borrow=borrowed())

        return ChildSpec(name, start_in_borrowed_loop, stop_timeout=3 * close_timeout + 2)
    return ChildSpec(name, start, stop_timeout=3 * close_timeout + 2)


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
        in_caller_loop: Run the actor's I/O in the loop that calls ``start`` instead of a loop thread of
            its own: what that loop hands over reaches the socket without a thread hop (the fast path
            for publishers and reply subscribers). That loop must keep running until ``stop`` returns.
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
        in_caller_loop: bool = False,
    ) -> None:
        self.handle = PeerHandle(name)
        self.in_caller_loop = in_caller_loop
        self._borrowed: BorrowedLoop | None = None
        spec = peer_spec(
            name,
            self.handle,
            connect=connect,
            subscriptions=subscriptions,
            sink=sink,
            window=window,
            close_timeout=close_timeout,
            borrow=(lambda: self._borrowed) if in_caller_loop else None,
        )
        super().__init__(name, [spec], policy=policy)

    async def start(self) -> None:
        """Start the actor (in the calling loop when ``in_caller_loop``); idempotent."""
        if self.in_caller_loop and not self.running:
            self._borrowed = BorrowedLoop.current()
        await super().start()
