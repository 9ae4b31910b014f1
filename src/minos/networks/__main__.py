"""``python -m minos.networks``: the ``minos-networks`` command line (see ``minos.networks.cli``)."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
