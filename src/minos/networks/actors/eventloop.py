"""Which event loop minos.networks runs its own threads and commands on: uvloop where it is installed.

Every LoopActor thread (brokers, dispatchers, subscribers), the PostgreSQL store's writer thread and
the ``minos-networks`` commands run an event loop that minos.networks creates itself; they take it from
``new_event_loop()``. uvloop (a dependency on Linux and macOS) runs the same asyncio code with less
work per wake-up and per callback: measured on the 2-core development machine as CPU time per message
of the three processes of ``broker-events`` (publisher + broker + handler), 36-37 us on the standard
loop against 27-28 us on uvloop. A loop the application made itself (the one it calls
``BrokerPublisher.send`` from, say) stays whatever the application chose.

Set ``MINOS_NETWORKS_LOOP=asyncio`` to run everything on the standard library's loop instead (to rule
uvloop out when chasing a problem); ``uvloop`` demands it, failing at the first loop made when it is
not installed. Unset, uvloop is used when it can be imported.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

__all__ = ["LOOP_VARIABLE", "loop_kind", "new_event_loop", "run_main"]

T = TypeVar("T")

LOOP_VARIABLE: Final = "MINOS_NETWORKS_LOOP"
"""The environment variable that picks the loop: ``uvloop`` or ``asyncio`` (unset: uvloop if installed)."""

_KINDS: Final = ("uvloop", "asyncio")


def loop_kind() -> str:
    """``"uvloop"`` or ``"asyncio"``: what ``new_event_loop`` makes, as ``MINOS_NETWORKS_LOOP`` says.

    Raises:
        ValueError: The variable holds something else.
        ImportError: It says ``uvloop`` and uvloop is not installed.
    """
    wanted = os.environ.get(LOOP_VARIABLE, "").strip().lower()
    if wanted and wanted not in _KINDS:
        raise ValueError(
            f"{LOOP_VARIABLE}={os.environ[LOOP_VARIABLE]!r} is not a kind of event loop; set it to 'uvloop' "
            "or 'asyncio', or unset it (uvloop when installed)"
        )
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError as error:
        if wanted == "uvloop":
            raise ImportError(
                f"{LOOP_VARIABLE}=uvloop but uvloop is not installed: pip install uvloop, or unset the variable"
            ) from error
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind ``loop_kind()`` names, not set as any thread's current loop.

    Raises:
        ValueError, ImportError: As ``loop_kind``.
    """
    if loop_kind() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a loop from ``new_event_loop``: for a command's or a script's main coroutine.

    Raises:
        ValueError, ImportError: As ``loop_kind`` (``main`` is closed unstarted then).
    """
    try:
        loop = new_event_loop()  # before main starts, so that a refused kind leaves nothing running
    except BaseException:
        main.close()
        raise
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        return runner.run(main)
