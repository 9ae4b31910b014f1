"""The worker processes of the peer scenarios: ``python -m benchmarks.peer_workers ROLE ARGS...``.

The peers are FastStream itself (``pip install -e '.[peers]'``), written the way its documentation shows:
a broker object, ``@broker.subscriber`` handlers, ``broker.publish`` and ``broker.request``; logging
off (as our processes run), apply_types on (its default), uvloop (``run_main``, as ours). KIND is
``nats`` (core NATS), ``jetstream`` (NATS JetStream, file storage, a durable pull consumer), ``rabbit``
(RabbitMQ, publisher confirms, acks) or ``redis`` (Redis streams, a consumer group, XACK); URL is the
server; NAME names the subject, stream or queue of the run (each run its own). Every role prints
``ready`` once set up, reads commands from stdin and answers on stdout, as ``benchmarks.workers`` does.

- ``peer-handler KIND URL NAME MODE``: a FastStream subscriber counting what it handles (MODE
  ``events``: returns nothing; ``commands``: returns the body, which FastStream sends as the reply).
  Commands ``expect N TIMEOUT`` and ``total`` as for ``benchmarks.workers handler``.
- ``peer-publisher KIND URL NAME SENDERS``: ``prepare N`` and ``send N`` as for ``benchmarks.workers
  publisher``: SENDERS coroutines, each awaiting ``broker.publish`` (the PubAck, the publisher confirm,
  the XADD reply; core NATS has none) before its next.
- ``peer-client KIND URL NAME``: ``prepare N``, then ``request N DEPTH TIMEOUT``: N requests by
  ``broker.request``, DEPTH in flight, answers ``done SECONDS P50_US P99_US``.
- ``client ENDPOINT``: the same for our BrokerClient (request/reply by ``send`` and ``receive``), so
  that both sides of a request/reply row have the same processes: client, server, handler.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from benchmarks.workers import commands, expect, say
from minos.networks.actors import run_main

__all__ = ["KINDS", "main", "peer_body"]

KINDS = ("nats", "jetstream", "rabbit", "redis")
"""The FastStream brokers the peer scenarios run."""
DEPTH_MAX = 100  # the most requests in flight a peer scenario asks for
WINDOW = 1000  # what a JetStream pull asks for at most: our NATS connection's window (``window``)


def peer_body() -> dict[str, Any]:
    """Our benchmark message as a plain dict FastStream sends as JSON: the same fields, a fresh identifier."""
    from benchmarks.codec import plain_equivalent, typical_message

    body = plain_equivalent(typical_message())
    body["identifier"] = str(uuid.uuid4())
    return body


def _broker(kind: str, url: str, concurrency: int = 1) -> Any:
    """FastStream's broker object for KIND, logging off; ``concurrency`` publishes or requests at once."""
    if kind in ("nats", "jetstream"):
        from faststream.nats import NatsBroker

        return NatsBroker(url, logger=None)
    if kind == "rabbit":
        from faststream.rabbit import RabbitBroker

        return RabbitBroker(url, logger=None)
    if kind == "redis":
        from faststream.redis import RedisBroker

        # redis-py's pool holds 100 connections by default and fails past them; a call in flight takes
        # one, a request two (its reply subscription).
        return RedisBroker(url, logger=None, max_connections=max(100, 2 * concurrency + 10))
    raise ValueError(f"unknown peer kind {kind!r}; known: {', '.join(KINDS)}")


def _subscribe(broker: Any, kind: str, name: str) -> Callable[[Callable[..., Any]], Any]:
    """The ``@broker.subscriber(...)`` decorator for NAME on KIND, acknowledging after the handler."""
    if kind == "nats":
        return broker.subscriber(name)
    if kind == "jetstream":
        from faststream.nats import JStream, PullSub
        from nats.js.api import RetentionPolicy, StorageType

        stream = JStream(name, subjects=[name], storage=StorageType.FILE, retention=RetentionPolicy.INTEREST)
        return broker.subscriber(name, stream=stream, durable=name, pull_sub=PullSub(batch_size=WINDOW))
    if kind == "rabbit":
        from faststream.rabbit import RabbitQueue

        return broker.subscriber(RabbitQueue(name, auto_delete=True))
    from faststream.redis import StreamSub

    return broker.subscriber(stream=StreamSub(name, group=name, consumer="bench"))


def _destination(kind: str, name: str) -> dict[str, Any]:
    """The keyword arguments of ``broker.publish`` and ``broker.request`` that send to NAME on KIND."""
    if kind == "nats":
        return {"subject": name}
    if kind == "jetstream":  # a PubAck may take longer than FastStream's default 0.5 s with 1,000 in flight
        return {"subject": name, "stream": name, "timeout": 60.0}
    if kind == "rabbit":
        return {"queue": name}
    return {"stream": name}


async def peer_handler(kind: str, url: str, name: str, mode: str) -> None:
    """Run a FastStream subscriber on NAME counting what it handles; in ``commands`` mode it echoes."""
    from benchmarks.e2e import COUNTER

    broker = _broker(kind, url)
    hit = COUNTER.hit
    if mode == "commands":

        async def echo(body: dict[str, Any]) -> dict[str, Any]:
            hit()
            return body

        _subscribe(broker, kind, name)(echo)
    else:

        async def count(body: dict[str, Any]) -> None:
            hit()

        _subscribe(broker, kind, name)(count)
    loop = asyncio.get_running_loop()
    await broker.start()
    try:
        say("ready")
        async for words in commands():
            if words[0] == "expect":
                await expect(words, lambda wake: partial(loop.call_soon_threadsafe, wake))
            elif words[0] == "total":
                say("total", COUNTER.total)
            else:
                say("error unknown command", words[0])
    finally:
        await broker.stop()


async def peer_publisher(kind: str, url: str, name: str, senders: int) -> None:
    """Publish events to NAME from SENDERS coroutines, each awaiting the broker's answer before its next."""
    broker = _broker(kind, url, senders)
    destination = _destination(kind, name)
    publish = broker.publish
    await broker.start()
    try:
        say("ready")
        prepared: list[dict[str, Any]] = []
        async for words in commands():
            if words[0] not in ("prepare", "send"):
                say("error unknown command", words[0])
                continue
            count = int(words[1])
            if words[0] == "prepare":
                prepared = [peer_body() for _ in range(count)]
                say("prepared")
                continue
            messages = prepared if len(prepared) == count else [peer_body() for _ in range(count)]
            prepared = []

            async def send_all(share: Sequence[dict[str, Any]]) -> None:
                for message in share:
                    await publish(message, **destination)

            start = time.monotonic()
            await asyncio.gather(*(send_all(messages[i::senders]) for i in range(senders)))
            say("sent", repr(start), repr(time.monotonic()))
    finally:
        await broker.stop()


Measurement = tuple[float, list[int]]
"""Seconds for all the requests, and each request's latency in nanoseconds."""


async def _requests(ask: Callable[[Any], Any], bodies: Sequence[Any], depth: int) -> Measurement:
    """``depth`` coroutines, each awaiting ``ask(body)`` for the next body until none is left."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    queue = iter(bodies)

    async def one_by_one() -> None:
        for body in queue:
            sent = clock()
            await ask(body)
            latencies.append(clock() - sent)

    start = time.perf_counter()
    await asyncio.gather(*(one_by_one() for _ in range(depth)))
    return time.perf_counter() - start, latencies


async def _serve_requests(prepare: Callable[[int], list[Any]], measure: Callable[..., Any]) -> None:
    """Answer ``prepare N`` and ``request N DEPTH TIMEOUT`` on stdin until it closes."""
    from benchmarks.e2e import percentiles

    prepared: list[Any] = []
    async for words in commands():
        if words[0] == "prepare":
            prepared = prepare(int(words[1]))
            say("prepared")
        elif words[0] == "request":
            count, depth, timeout = int(words[1]), int(words[2]), float(words[3])
            bodies = prepared if len(prepared) == count else prepare(count)
            prepared = []
            try:
                async with asyncio.timeout(timeout):
                    seconds, latencies = await measure(bodies, depth)
            except TimeoutError:
                say("timeout", count, depth)
                continue
            if len(latencies) != count:
                say("error", len(latencies), "replies for", count)
                continue
            p50, p99 = percentiles(latencies)
            say("done", repr(seconds), repr(p50), repr(p99))
        else:
            say("error unknown command", words[0])


async def peer_client(kind: str, url: str, name: str) -> None:
    """Send requests to NAME by ``broker.request`` and check each reply echoes its request."""
    broker = _broker(kind, url, DEPTH_MAX)
    destination = _destination(kind, name)
    await broker.start()
    try:
        request = broker.request

        async def ask(body: dict[str, Any]) -> None:
            reply = await request(body, **{**destination, "timeout": 60.0})
            answer = await reply.decode()
            if answer["identifier"] != body["identifier"]:
                raise RuntimeError(f"the reply to {body['identifier']} answers {answer['identifier']!r}")

        say("ready")
        await _serve_requests(lambda count: [peer_body() for _ in range(count)], partial(_requests, ask))
    finally:
        await broker.stop()


async def client(endpoint: str) -> None:
    """Send requests with our BrokerClient through the broker at ENDPOINT (``send`` then ``receive``)."""
    from benchmarks.e2e import broker_config, command_messages, timeout_for
    from benchmarks.request_reply import _path
    from minos.common import Config
    from minos.networks import BrokerClient

    name = f"bench-client-{uuid.uuid4().hex[:8]}"
    config = Config({"name": name, "interfaces": {"broker": broker_config(endpoint)}})
    broker_client = BrokerClient.from_config(config)
    await broker_client.start()
    try:
        say("ready")

        async def measure(requests: Sequence[Any], depth: int) -> Measurement:
            return await _path(broker_client, requests, depth, timeout_for(len(requests)))

        await _serve_requests(command_messages, measure)
    finally:
        await broker_client.stop()


ROLES: dict[str, Callable[[list[str]], None]] = {
    "peer-handler": lambda args: run_main(peer_handler(args[0], args[1], args[2], args[3])),
    "peer-publisher": lambda args: run_main(peer_publisher(args[0], args[1], args[2], int(args[3]))),
    "peer-client": lambda args: run_main(peer_client(args[0], args[1], args[2])),
    "client": lambda args: run_main(client(args[0])),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the role named by the first argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ROLES:
        print(f"usage: python -m benchmarks.peer_workers {{{','.join(ROLES)}}} ARGS...", file=sys.stderr)
        return 2
    from minos.networks.system import tune_gc

    tune_gc()  # as every benchmark process does: the same collector settings on both sides of a ratio
    ROLES[args[0]](args[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
