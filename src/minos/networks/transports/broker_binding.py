"""The broker's ROUTER socket made ready to serve: its options, CURVE when configured, its endpoints bound.

``BrokerServer.run`` creates the socket and closes it; in between it calls, in this order,
``prepare_router``, ``secure_router`` and ``bind_router``, each of which raises ``BrokerBindError`` (or a
``zmq.ZMQError`` for an option libzmq refuses) and leaves the closing to the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import zmq

from ..exceptions import MinosNetworkException
from .security import CurveGuard, CurveServer
from .wire import frame_limit

__all__ = ["BrokerBindError", "bind_router", "prepare_router", "secure_router"]

# The broker's own logger: these lines are about what the broker does, and that is the name operators
# filter on, wherever the code that writes them lives.
logger = logging.getLogger("minos.networks.transports.broker")


class BrokerBindError(MinosNetworkException, OSError):
    """The broker could not bind one of its endpoints (address in use, bad endpoint, path too long)."""


def prepare_router(socket: zmq.Socket[bytes], *, max_frame_size: int) -> None:
    """Set what the broker relies on: unroutable sends fail, no high-water marks, a frame size limit."""
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
    socket.setsockopt(zmq.SNDHWM, 0)  # what a peer may get is bounded by its credit window
    socket.setsockopt(zmq.RCVHWM, 0)  # what a peer may send is bounded by its max_in_flight
    socket.setsockopt(zmq.MAXMSGSIZE, frame_limit(max_frame_size))


def secure_router(
    socket: zmq.Socket[bytes],
    context: zmq.Context[Any],
    curve: CurveServer | None,
    requested: Sequence[str],
) -> tuple[CurveGuard | None, list[int]]:
    """Make ``socket`` a CURVE server when configured (and not inproc only).

    Returns:
        The guard, for the broker to pump and close, and its FDs for the loop to watch; None and no FDs
        when the socket stays plain.

    Raises:
        BrokerBindError: when the context has a ZAP authenticator already.
    """
    if curve is None:
        return None, []
    if all(endpoint.startswith("inproc://") for endpoint in requested):
        logger.info(
            "CURVE is not applied to %s: inproc links never leave the process and stay plain",
            requested,
        )
        return None, []
    guard = CurveGuard(context, curve)
    try:
        fds = guard.secure(socket)
    except zmq.ZMQError as exc:
        guard.close()
        raise BrokerBindError(
            f"the CURVE broker for {requested!r} cannot start its ZAP authenticator: {exc.strerror}; "
            "another one runs on this zmq context already: give each CURVE broker a context of its own"
        ) from exc
    return guard, fds


def bind_router(socket: zmq.Socket[bytes], requested: Sequence[str], bound: list[str]) -> None:
    """Bind ``socket`` to each endpoint in turn, appending each to ``bound`` once bound, as ZeroMQ reports it.

    Raises:
        BrokerBindError: when an endpoint cannot be bound (those before it stay bound, and in ``bound``).
    """
    for endpoint in requested:
        try:
            socket.bind(endpoint)
        except zmq.ZMQError as exc:
            raise BrokerBindError(
                f"the broker cannot bind {endpoint!r}: {exc.strerror}; free the address, pick "
                "another one, or for ipc use a path shorter than about 100 characters"
            ) from exc
        bound.append(socket.getsockopt_string(zmq.LAST_ENDPOINT))
