"""The ``minos-networks`` command line (also ``python -m minos.networks``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 2


def _demo() -> int:
    """Encode a message into ZeroMQ frames and decode it back, showing what travels on the wire."""
    from .protocol import BrokerMessageV1, BrokerMessageV1Payload, FrameCodec

    codec = FrameCodec()
    message = BrokerMessageV1(
        "order.created",
        BrokerMessageV1Payload(
            content={
                "order": UUID("12345678-1234-5678-1234-567812345678"),
                "total": Decimal("19.99"),
                "at": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
                "items": ["book", "pen"],
            },
            headers={"user": "8c0c1c2e-0000-4000-8000-000000000001"},
        ),
        reply_topic="order.created.reply",
    )
    frames = codec.encode(message)
    print(f"message:  {message!r}")
    for index, frame in enumerate(frames):
        print(
            f"frame {index}:  {len(frame):4d} bytes  {frame[:48].hex(' ')}{' ...' if len(frame) > 48 else ''}"
        )
    decoded = codec.decode(frames)
    print(f"decoded:  {decoded!r}")
    print(f"round trip exact: {decoded == message}")
    return EXIT_OK if decoded == message else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failure, 2 usage error)."""
    parser = argparse.ArgumentParser(prog="minos-networks", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="encode a message into wire frames and decode it back")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo()
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
