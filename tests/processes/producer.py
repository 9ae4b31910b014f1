"""A producer process for the backpressure tests: a BrokerPublisher sending as fast as ``send()`` lets it.

Run as ``python tests/processes/producer.py --endpoint ENDPOINT --topic TOPIC --seconds S``. Several sender
tasks share one publisher; each takes the next sequence number and awaits ``send()`` for it, so the
producer goes exactly as fast as the broker accepts. Message ``n`` has the identifier
``UUID(int=base + n)`` and the content ``n``; every send started is awaited to the end, so the accepted
messages are exactly ``0 .. accepted - 1``. One line per event on stdout:

- ``burst\\t<accepted>\\t<seconds>`` with ``--burst-endpoint``: first, for ``--burst-seconds``, it sends
  to that broker (one with room for everything and no subscriber), which is how fast it goes unthrottled;
- ``start\\t<base as 32 hex digits>`` when the measured run starts;
- ``progress\\t<seconds since start>\\t<accepted so far>\\t<VmRSS in KiB>`` about once a second;
- ``done\\t<accepted>\\t<seconds>`` once the last send started before the deadline returned;
- ``stopped\\tproducer`` after the publisher stopped; the exit code is then 0 (1 if a send failed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from minos.common import Config
from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, BrokerPublisher

STDOUT = 1
REPORT_EVERY = 1.0  # seconds between progress lines


def emit(*fields: str) -> None:
    """Write one tab-separated line to stdout at once."""
    os.write(STDOUT, ("\t".join(fields) + "\n").encode())


def rss_kib() -> int:
    """This process's resident set size (VmRSS), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status")


def publisher_config(endpoint: str, heartbeat_interval: float) -> Config:
    return Config(
        {
            "name": "producer",
            "interfaces": {
                "broker": {
                    "endpoint": endpoint,
                    "embedded": False,
                    "heartbeat_interval": heartbeat_interval,
                    "close_timeout": 2.0,
                }
            },
        }
    )


class Run:
    """Sender tasks sharing one publisher until a deadline; counts what the broker accepted."""

    def __init__(self, publisher: BrokerPublisher, topic: str, base: int) -> None:
        self.publisher = publisher
        self.topic = topic
        self.base = base
        self.issued = 0
        self.accepted = 0
        self.deadline = 0.0

    async def sender(self) -> None:
        while time.monotonic() < self.deadline:
            sequence = self.issued
            self.issued += 1
            message = BrokerMessageV1(
                self.topic, BrokerMessageV1Payload(sequence), identifier=uuid.UUID(int=self.base + sequence)
            )
            await self.publisher.send(message)
            self.accepted += 1

    async def run(self, seconds: float, senders: int) -> float:
        """Send until ``seconds`` from now; return how long it took until every send returned."""
        started = time.monotonic()
        self.deadline = started + seconds
        await asyncio.gather(*(self.sender() for _ in range(senders)))
        return time.monotonic() - started


async def burst(args: argparse.Namespace) -> None:
    publisher = BrokerPublisher.from_config(publisher_config(args.burst_endpoint, args.heartbeat_interval))
    await publisher.start()
    try:
        run = Run(publisher, args.topic, uuid.uuid4().int & ~0xFFFFFFFF)
        elapsed = await run.run(args.burst_seconds, args.senders)
    finally:
        await publisher.stop()
    emit("burst", str(run.accepted), f"{elapsed:.3f}")


async def produce(args: argparse.Namespace) -> None:
    if args.burst_endpoint:
        await burst(args)
    publisher = BrokerPublisher.from_config(publisher_config(args.endpoint, args.heartbeat_interval))
    await publisher.start()
    base = uuid.uuid4().int & ~0xFFFFFFFF  # room for 2**32 sequence numbers below it
    run = Run(publisher, args.topic, base)

    async def report(started: float) -> None:
        ticks = 0
        while True:
            ticks += 1
            # The report's cadence is the measurement itself, not a synchronisation.
            await asyncio.sleep(started + ticks * REPORT_EVERY - time.monotonic())  # sync-ok
            emit("progress", f"{time.monotonic() - started:.3f}", str(run.accepted), str(rss_kib()))

    try:
        emit("start", f"{base:032x}")
        reporter = asyncio.create_task(report(time.monotonic()))
        try:
            elapsed = await run.run(args.seconds, args.senders)
        finally:
            reporter.cancel()
        emit("done", str(run.accepted), f"{elapsed:.3f}")
    finally:
        await publisher.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the broker of the measured run")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--seconds", type=float, required=True, help="how long the measured run sends")
    parser.add_argument("--senders", type=int, default=64, help="sender tasks sharing the publisher")
    parser.add_argument("--burst-endpoint", help="a broker to measure the unthrottled rate against first")
    parser.add_argument("--burst-seconds", type=float, default=1.0)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    args = parser.parse_args()
    try:
        asyncio.run(produce(args))
    except Exception as error:
        emit("failed", f"{type(error).__name__}: {error}")
        raise
    emit("stopped", "producer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
