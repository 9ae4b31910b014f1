"""The ``minos-networks`` command line (also ``python -m minos.networks``): one module per command.

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 configuration error (nothing was started);
``run`` also exits 130 (SIGINT) or 143 (SIGTERM) when a second signal cuts its graceful stop short.
The package sits above ``system`` (it builds services with ``ServiceRunner``); nothing imports it but
``__main__`` and, lazily, ``minos.common``'s ``EntrypointLauncher``.
"""

from .parser import main

__all__ = ["main"]
