"""``minos-networks keygen``: a CURVE key pair written to files, its public key printed."""

from __future__ import annotations

import argparse
import sys

from ..transports import create_keys, load_public
from .exits import EXIT_FAILURE, EXIT_OK
from .options import Commands

__all__ = ["add_parser", "keygen_command"]


def add_parser(commands: Commands) -> None:
    """Add ``keygen DIR NAME``."""
    keygen = commands.add_parser(
        "keygen",
        help="write a CURVE key pair: DIR/NAME.key (public) and DIR/NAME.key_secret (mode 0600)",
        description="Write a CURVE key pair and print its public key. Exit codes: 0 written, 1 could not "
        "write (or the files exist already), 2 usage.",
    )
    keygen.add_argument("directory", metavar="DIR", help="where to write the key files (created if missing)")
    keygen.add_argument("name", metavar="NAME", help="the key pair's name, e.g. broker or orders-service")
    keygen.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return keygen_command(args.directory, args.name)


def keygen_command(directory: str, name: str) -> int:
    """Write a CURVE key pair (the secret file with mode 0600) and print the public key; 0 ok, 1 failure."""
    try:
        public_file, secret_file = create_keys(directory, name)
    except OSError as error:
        print(f"minos-networks keygen: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(load_public(public_file).decode(), flush=True)
    print(
        f"minos-networks keygen: wrote {public_file} (public: give it to the broker's allowed clients, or to "
        f"clients as the server key) and {secret_file} (secret, mode 0600: keep it here)",
        file=sys.stderr,
    )
    return EXIT_OK
