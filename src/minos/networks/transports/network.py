"""Small helpers minos 0.7 shipped as its utils: this host's name and address, and draining a queue."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = ["consume_queue", "get_host_ip", "get_host_name", "get_ip"]


def get_host_name() -> str:
    """Returns this host's name, as ``socket.gethostname()`` gives it."""
    return socket.gethostname()


def get_ip(name: str) -> str:
    """Returns the IPv4 address a host name resolves to.

    This may block while the resolver asks DNS; call it off the event loop (``asyncio.to_thread``)
    where that matters.

    Args:
        name: A host name such as ``"localhost"``, or an IPv4 address (returned as it is).

    Raises:
        OSError: The name does not resolve (``socket.gaierror``).
    """
    return socket.gethostbyname(name)


def get_host_ip() -> str:
    """Returns the IPv4 address this host's own name resolves to (what discovery advertises by default).

    Raises:
        OSError: The host's name does not resolve.
    """
    return get_ip(get_host_name())


async def consume_queue(queue: asyncio.Queue[Any], max_count: int) -> None:
    """Waits for one item of ``queue``, then takes what is already there, up to ``max_count`` items in all.

    This is how minos 0.7 coalesced wake-up notifications: however many arrived, one pass handles them.
    Items taken are discarded, and each is marked done (``task_done``) so ``queue.join()`` still works.

    Args:
        queue: The queue to drain.
        max_count: The most items taken; at least one is always awaited.

    Raises:
        ValueError: ``max_count`` is below 1.
    """
    if max_count < 1:
        raise ValueError(f"max_count must be at least 1, got {max_count!r}")
    await queue.get()
    queue.task_done()
    for _ in range(max_count - 1):
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        queue.task_done()
