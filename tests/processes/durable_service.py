"""The processes of the durable crash-loop test: a durable publisher, and durable workers sharing an inbox.

Run as ``python tests/processes/durable_service.py producer|worker --endpoint E --store sqlite|postgresql
--target PATH_OR_DSN [--schema S] ...``; with ``--endpoint nats://HOST:PORT/STREAM`` the broker is that
NATS JetStream server (the stream doubles as the subject prefix). Both build their broker side from a ``Config`` with
``interfaces.broker.durable``, as a service does. One line per event on stdout, each a single ``write``:

producer (sends ``--count`` messages on ``crash.work``; message ``n`` has content ``n`` and identifier
``UUID(int=base + n)``; ``--senders`` tasks each await ``send()``, which returns once the row is committed):
  ``ready\\tproducer``, ``progress\\t<sent>`` every 1,000 sends, ``sent\\t<count>\\t<seconds>``, then
  ``confirmed\\t<seconds>`` once every row got its receipt, and ``stopped\\tproducer`` after SIGTERM.

worker (group ``crash``): its handler appends ``n`` to ``--runs-file`` (outside any transaction: the
kernel keeps it across a SIGKILL) and records ``(n, worker)`` in ``crash_effects`` with ``inbox_execute``
(in the inbox transaction). ``ready\\t<name>`` once subscribed, ``progress\\t<name>\\t<runs>`` every 1,000
runs, ``stopped\\t<name>`` after SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from typing import Any

from minos.common import Config
from minos.networks import (
    BrokerMessageV1,
    BrokerMessageV1Payload,
    BrokerPort,
    BrokerPublisher,
    Request,
    enroute,
)
from minos.networks.durable import inbox_execute

STDOUT = 1
TOPIC = "crash.work"
GROUP = "crash"


def emit(*fields: str) -> None:
    """Write one tab-separated line to stdout at once."""
    os.write(STDOUT, ("\t".join(fields) + "\n").encode())


class CrashService:
    """Records every run in the runs file and each message's effect in the inbox transaction."""

    def __init__(self, config: Config) -> None:
        self.name = config.get_str("crash.name")
        self.runs = 0
        self.runs_fd = os.open(
            config.get_str("crash.runs_file"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        postgres = config.get_str("interfaces.broker.durable.store", "sqlite") == "postgresql"
        self.sql = f"INSERT INTO crash_effects (n, worker) VALUES ({'$1, $2' if postgres else '?, ?'})"

    @enroute.broker.event(TOPIC)
    async def work(self, request: Request) -> None:
        n = await request.content()
        os.write(self.runs_fd, b"%d\n" % n)
        inbox_execute(self.sql, (n, self.name))
        self.runs += 1
        if self.runs % 1000 == 0:
            emit("progress", self.name, str(self.runs))


def build_config(args: argparse.Namespace, name: str, **extra: Any) -> Config:
    if args.store == "postgresql":
        durable: dict[str, Any] = {"store": "postgresql", "dsn": args.target, "schema": args.schema}
    else:
        durable = {"path": args.target}
    if args.endpoint.startswith("nats://"):
        server, _, stream = args.endpoint.rpartition("/")
        where: dict[str, Any] = {
            "transport": "nats",
            # A killed worker's messages come back after ack_wait; none may be dead-lettered for it.
            "nats": {"servers": [server], "stream": stream, "subject_prefix": stream, "ack_wait": 2.0,
                     "max_deliveries": 1000, "pull_expires": 0.5},
        }  # fmt: skip
    else:
        where = {"endpoint": args.endpoint, "embedded": False}
    return Config(
        {
            "name": name,
            "interfaces": {
                "broker": {
                    **where,
                    "group": GROUP,
                    "heartbeat_interval": args.heartbeat_interval,
                    "close_timeout": 2.0,
                    "concurrency": 50,
                    "durable": {
                        **durable,
                        "origin": name,
                        "resend_after": args.resend_after,
                        "max_resend_interval": 4 * args.resend_after,
                    },
                }
            },
            **extra,
        }
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (installed before anything is printed, so no signal is missed)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def produce(args: argparse.Namespace) -> None:
    config = build_config(args, "producer")
    stop = stop_on_signals()
    base = uuid.uuid4().int & ~((1 << 64) - 1)
    async with BrokerPublisher.from_config(config) as publisher:
        emit("ready", "producer")
        started = time.monotonic()
        next_n = 0
        sent = 0

        async def sender() -> None:
            nonlocal next_n, sent
            while next_n < args.count:
                n, next_n = next_n, next_n + 1
                message = BrokerMessageV1(
                    TOPIC, BrokerMessageV1Payload(n), identifier=uuid.UUID(int=base + n)
                )
                await publisher.send(message)
                sent += 1
                if sent % 1000 == 0:
                    emit("progress", str(sent))

        await asyncio.gather(*(sender() for _ in range(args.senders)))
        emit("sent", str(sent), f"{time.monotonic() - started:.2f}")
        assert publisher.outbox is not None
        await publisher.outbox.wait_empty()
        emit("confirmed", f"{time.monotonic() - started:.2f}")
        await stop.wait()
    emit("stopped", "producer")


async def work(args: argparse.Namespace) -> None:
    config = build_config(
        args, GROUP, services=[CrashService], crash={"name": args.name, "runs_file": args.runs_file}
    )
    stop = stop_on_signals()
    async with BrokerPort.from_config(config):
        emit("ready", args.name)
        await stop.wait()
    emit("stopped", args.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("producer", "worker"))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), required=True)
    parser.add_argument("--target", required=True, help="the SQLite file, or the PostgreSQL dsn")
    parser.add_argument("--schema", default="public")
    parser.add_argument("--name", default="worker")
    parser.add_argument("--runs-file", default=os.devnull)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    parser.add_argument("--resend-after", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(produce(args) if args.role == "producer" else work(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
