"""Instructions per event of the embedded path, counted by valgrind's callgrind: for changes of a few percent.

``python -m benchmarks.instructions [--messages N] [--durable]`` runs the embedded path (``BrokerPublisher``
-> embedded broker -> dispatcher -> handler, one process, as ``embedded-events``) twice under
``valgrind --tool=callgrind``: once sending N events after a warm-up, once the warm-up only, and prints
the difference divided by N. Callgrind counts the instructions every thread runs in user space, not
seconds, so two runs of the same code agree to about 0.5% (4% with ``--durable``, whose group commits
depend on timing) whatever else the machine is doing: rates and CPU times on a shared machine move by
more than the change being measured. System calls and waiting count for nothing here; measure those
with the scenarios' ``cpu_us`` columns. Each run takes 20-60 s (valgrind runs Python about 50 times
slower).

``--workload N`` (what valgrind runs) only runs the path: warm-up, then N events.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence

WARMUP = 500
SENDERS = 100
"""Coroutines sending at once, each awaiting the broker's acceptance before its next send."""

_COLLECTED = re.compile(r"Collected : (\d+)")


async def _workload(messages: int, durable: bool) -> None:
    from benchmarks.e2e import event_messages, timeout_for
    from benchmarks.embedded_events import embedded_config, measure_path
    from minos.networks import BrokerPublisher
    from minos.networks.brokers import BrokerPort

    with tempfile.TemporaryDirectory() as directory:
        name = f"instructions-{uuid.uuid4().hex[:8]}"
        config = embedded_config(name, f"{directory}/durable.sqlite" if durable else None)
        port, publisher = BrokerPort.from_config(config), BrokerPublisher.from_config(config)
        await port.start()
        await publisher.start()
        try:
            for count in (WARMUP, messages):
                if count:
                    await measure_path(publisher, event_messages(count), timeout_for(count), SENDERS)
        finally:
            await publisher.stop()
            await port.stop()


def run_workload(messages: int, durable: bool = False) -> None:
    """Run the embedded path: the warm-up, then ``messages`` events (none for 0)."""
    from minos.networks.actors import run_main

    run_main(_workload(messages, durable))


def count_instructions(messages: int, durable: bool) -> int:
    """Instructions valgrind counted for one process running ``run_workload(messages, durable)``."""
    argv = [sys.executable, "-m", "benchmarks.instructions", "--workload", str(messages)]
    if durable:
        argv.append("--durable")
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(
            f"valgrind run of {messages} events failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return int(found.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=5000, help="events counted (default 5000)")
    parser.add_argument("--durable", action="store_true", help="with a SQLite outbox and inbox")
    parser.add_argument("--workload", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload is not None:
        from minos.networks.system import tune_gc

        tune_gc()  # as every benchmark process does
        run_workload(args.workload, args.durable)
        return 0
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    with_events = count_instructions(args.messages, args.durable)
    without = count_instructions(0, args.durable)
    print(
        f"{(with_events - without) / args.messages:,.0f} instructions per event "
        f"({with_events:,} with {args.messages:,} events, {without:,} without)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
