"""PeerService: one supervised PeerActor, and peer_spec, how a supervisor starts one."""

from __future__ import annotations

import logging
from functools import partial

from ..actors import ActorService, ChildSpec, RestartPolicy
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
