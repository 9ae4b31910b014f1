"""A service worker process for the multi-process tests: joins a group on a broker process and reports what it handles.

Run as ``python tests/processes/worker.py --endpoint ENDPOINT --group GROUP --name NAME --topic T ...``.
It builds its broker side from a ``Config`` (``interfaces.broker`` with ``embedded: false``), the way a
service does, and writes one line per event to stdout, each with a single ``write`` so lines from
different threads never interleave:

- ``ready\\t<name>`` once subscribed (the broker keeps the group's messages from then on);
- ``handled\\t<name>\\t<identifier>\\t<topic>\\t<content as JSON>`` when a handler runs, before the
  message is acknowledged (so a message this process handled but never acknowledged shows up here
  and, after a kill, again in another worker's output);
- ``stopped\\t<name>`` after SIGTERM, once the broker side has stopped; the exit code is then 0.

A message whose content is a mapping with a ``status`` key gets that status in its reply; every message
sent with a reply topic is answered with ``{"worker", "group", "echo"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from minos.common import Config
from minos.networks import (
    BrokerDispatcher,
    BrokerHandler,
    BrokerPort,
    BrokerSubscriber,
    Request,
    Response,
    enroute,
)

STDOUT = 1


def emit(*fields: str) -> None:
    """Write one tab-separated line to stdout at once (a single write of less than PIPE_BUF is atomic)."""
    os.write(STDOUT, ("\t".join(fields) + "\n").encode())


class WorkerService:
    """The worker's one handler, routed to every topic under ``worker.topics`` in the config."""

    def __init__(self, config: Config) -> None:
        self.name = config.get_str("worker.name")
        self.group = config.name
        self.delay = config.get_float("worker.delay")

    @classmethod
    def __get_enroute__(cls, config: Config) -> dict[str, set[Any]]:
        return {"handle": {enroute.broker.command(topic) for topic in config.get_list("worker.topics")}}

    async def handle(self, request: Request) -> Response:
        content = await request.content()
        raw = request.raw  # type: ignore[attr-defined]
        emit("handled", self.name, str(raw.identifier), raw.topic, json.dumps(content, default=str))
        if self.delay:
            await asyncio.sleep(self.delay)  # sync-ok: simulated handler work, not synchronisation
        status = content.get("status", 200) if isinstance(content, dict) else 200
        return Response({"worker": self.name, "group": self.group, "echo": content}, status=status)


def build_config(args: argparse.Namespace) -> Config:
    return Config(
        {
            "name": args.group,
            "interfaces": {
                "broker": {
                    "endpoint": args.endpoint,
                    "embedded": False,
                    "heartbeat_interval": args.heartbeat_interval,
                    "window": args.window,
                    "concurrency": args.concurrency,
                    "close_timeout": args.close_timeout,
                }
            },
            "services": [WorkerService],
            "worker": {"name": args.name, "topics": args.topic, "delay": args.delay},
        }
    )


async def serve(args: argparse.Namespace) -> None:
    config = build_config(args)
    if args.runner == "port":
        runner: BrokerPort | BrokerHandler = BrokerPort.from_config(config)
    else:
        runner = BrokerHandler(
            BrokerDispatcher.from_config(config),
            BrokerSubscriber.from_config(config, args.topic),
            concurrency=args.concurrency,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await runner.start()
    try:
        emit("ready", args.name)
        await stop.wait()
    finally:
        await runner.stop()
    emit("stopped", args.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the broker, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--group", required=True, help="the service name, which is the group joined")
    parser.add_argument("--name", required=True, help="this instance's name in the output")
    parser.add_argument("--topic", action="append", required=True, help="a topic to handle (repeatable)")
    parser.add_argument("--runner", choices=("port", "handler"), default="port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each handler works")
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--heartbeat-interval", type=float, default=0.2)
    parser.add_argument("--close-timeout", type=float, default=2.0)
    asyncio.run(serve(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
