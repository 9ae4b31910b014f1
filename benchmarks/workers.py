"""The worker processes of the end-to-end scenarios: ``python -m benchmarks.workers ROLE ARGS...``.

Every role prints ``ready`` once set up. Roles that take commands read them from stdin, one per line,
answer on stdout, and exit when stdin closes; the others (the raw relays and the echo worker) run
until SIGTERM. Times are ``time.monotonic()`` seconds, comparable across the processes of a machine.

minos.networks roles (the measured paths; ENDPOINT is the broker's, e.g. ``ipc:///tmp/x/broker``):

- ``handler ENDPOINT [DURABLE_PATH]``: a BrokerPort running BenchService's handlers (events counted,
  commands echoed); durable, with its inbox in the SQLite file DURABLE_PATH, when given.
  ``expect N TIMEOUT`` answers ``armed`` at once, then ``done N T`` when the N-th message since was
  handled at time T (or ``timeout HANDLED``); ``total`` answers ``total HANDLED_SINCE_START``.
  ``watch`` answers ``armed`` and counts from zero with no target, stamping each message handled;
  ``count`` then answers ``count HANDLED FIRST_T LAST_T`` (for several handlers sharing a group, whose
  split nobody knows in advance).
- ``drain ENDPOINT N TIMEOUT``: the same handler, counting from before it subscribes (a backlog may
  arrive at once): ``ready`` once subscribed, then ``done N FIRST_T LAST_T`` when the N-th message was
  handled (or ``timeout HANDLED``); ``total`` as for ``handler``.
- ``publisher ENDPOINT SENDERS [DURABLE_PATH]``: a BrokerPublisher. ``send N`` builds N events, sends
  them from SENDERS concurrent coroutines, each awaiting the broker's acceptance (durable: the commit
  to its outbox in the SQLite file DURABLE_PATH), and answers ``sent T0 T1``. ``prepare N`` builds N
  events and answers ``prepared``; the next ``send N`` sends those (so that a CPU measurement around the
  send leaves the building out). ``stream N`` does the same as ``send`` but makes each event as a sender
  takes it, so that the process holds only what is in flight.

Raw pyzmq + msgpack roles (the ceilings):

- ``raw-relay IN OUT``: PULL bound at IN -> PUSH bound at OUT, one recv and one send per message.
- ``raw-push IN SIZE``: PUSH connected to IN; ``send N`` packs and sends N dicts of SIZE bytes;
  ``prepare N`` as for ``publisher``.
- ``raw-pull OUT``: PULL connected to OUT; ``expect N TIMEOUT`` and ``total`` as for ``handler``.
- ``raw-queue FRONT BACK``: ROUTER bound at FRONT <-> DEALER bound at BACK, draining both sides.
- ``raw-echo BACK``: DEALER connected to BACK; unpacks each request, packs and sends a reply.

Raw nats-py roles (the NATS ceilings; URL is the server, SUBJECT the run's own; STREAM ``-`` for core NATS):

- ``raw-nats-pull URL SUBJECT STREAM``: JetStream: creates the stream (file storage, interest retention,
  ``discard: new``, a 120 s duplicate window, as our NATS connection does) and a durable pull consumer with explicit acks, fetches up
  to 1000 at a time, unpacks each message and acknowledges it once handled. Core NATS: a subscription,
  unpacking each message. ``expect N TIMEOUT`` and ``total`` as for ``handler``.
- ``raw-nats-push URL SUBJECT STREAM SIZE SENDERS``: ``prepare N`` and ``send N`` as for ``raw-push``;
  JetStream: SENDERS coroutines, each awaiting the PubAck of its publish (with a ``Nats-Msg-Id``, as
  ours, for the stream's duplicate window) before its next; core NATS:
  publishes in one loop, then a flush (there is nothing to await).
- ``raw-nats-echo URL STREAM``: the handler side of the raw JetStream request/reply ceiling (see
  ``benchmarks.raw_nats``): makes STREAM and a durable pull consumer of its requests, answers each into
  JetStream awaiting the PubAck, then acknowledges the request. ``total`` as for ``handler``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from functools import partial
from typing import Any
from uuid import uuid4

import msgpack
import zmq

from minos.networks.actors import run_main

__all__ = ["commands", "main", "say"]


def say(*words: object) -> None:
    """Answer one line on stdout."""
    print(*words, flush=True)


# minos.networks -----------------------------------------------------------------------------------------


def _config(name: str, endpoint: str, durable_path: str | None = None) -> Any:
    from benchmarks.e2e import BenchService, broker_config
    from minos.common import Config

    broker: dict[str, Any] = broker_config(endpoint)
    if durable_path is not None:
        broker["durable"] = {"path": durable_path}
    return Config({"name": name, "services": [BenchService], "interfaces": {"broker": broker}})


async def expect(words: list[str], waker: Callable[[Callable[[], None]], Callable[[], None]]) -> None:
    """Answer ``expect TARGET TIMEOUT``: arm the counter, then say ``done`` once it reached TARGET, or ``timeout``.

    ``waker`` turns the event's ``set`` into what the counter may call from where it counts (the loop's own
    thread, or another one through ``call_soon_threadsafe``).
    """
    from benchmarks.e2e import COUNTER

    target, timeout = int(words[1]), float(words[2])
    reached = asyncio.Event()
    COUNTER.arm(target, waker(reached.set))
    say("armed")
    try:
        await asyncio.wait_for(reached.wait(), timeout)
    except TimeoutError:
        say("timeout", COUNTER.since_armed)
    else:
        say("done", COUNTER.since_armed, repr(COUNTER.reached_at))


async def commands() -> AsyncIterator[list[str]]:
    """The command lines from stdin, split into words, until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            if words := line.decode().split():
                yield words
    finally:
        transport.close()


async def handler(endpoint: str, durable_path: str | None = None) -> None:
    """Run BenchService behind a BrokerPort connected to the broker at ``endpoint``."""
    from benchmarks.e2e import COUNTER
    from minos.networks.brokers import BrokerPort

    port = BrokerPort.from_config(_config("bench-handler", endpoint, durable_path))
    loop = asyncio.get_running_loop()
    await port.start()
    try:
        say("ready")
        async for words in commands():
            if words[0] == "expect":
                await expect(words, lambda wake: partial(loop.call_soon_threadsafe, wake))
            elif words[0] == "watch":
                COUNTER.arm(-1, None, stamp=True)
                say("armed")
            elif words[0] == "count":
                say("count", COUNTER.since_armed, repr(COUNTER.first_at), repr(COUNTER.last_at))
            elif words[0] == "total":
                say("total", COUNTER.total)
            else:
                say("error unknown command", words[0])
    finally:
        await port.stop()


async def drain(endpoint: str, target: int, timeout: float) -> None:
    """Run BenchService as ``handler`` does, counting from before the port subscribes, up to ``target``."""
    from benchmarks.e2e import COUNTER
    from minos.networks.brokers import BrokerPort

    port = BrokerPort.from_config(_config("bench-handler", endpoint))
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()
    COUNTER.arm(target, partial(loop.call_soon_threadsafe, reached.set), stamp=True)
    await port.start()
    try:
        say("ready")

        async def report() -> None:
            try:
                await asyncio.wait_for(reached.wait(), timeout)
            except TimeoutError:
                say("timeout", COUNTER.since_armed)
            else:  # the target was reached; what came after it (an overflow behind the backlog) is not counted
                say("done", target, repr(COUNTER.first_at), repr(COUNTER.reached_at))

        reporting = loop.create_task(report())
        try:
            async for words in commands():
                if words[0] == "total":
                    say("total", COUNTER.total)
                else:
                    say("error unknown command", words[0])
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
    finally:
        await port.stop()


async def publisher(endpoint: str, senders: int, durable_path: str | None = None) -> None:
    """Run a BrokerPublisher connected to the broker at ``endpoint``."""
    from benchmarks.e2e import event_messages, event_stream
    from minos.networks import BrokerPublisher

    async with BrokerPublisher.from_config(_config("bench-publisher", endpoint, durable_path)) as sender:
        say("ready")
        prepared: list[Any] = []
        async for words in commands():
            if words[0] not in ("prepare", "send", "stream"):
                say("error unknown command", words[0])
                continue
            count = int(words[1])
            if words[0] == "prepare":
                prepared = event_messages(count)
                say("prepared")
                continue
            # send: every event made before the clock starts; stream: made as the senders take them.
            shares: list[Iterable[Any]]
            if words[0] == "send":
                messages = prepared if len(prepared) == count else event_messages(count)
                prepared = []
                shares = [messages[i::senders] for i in range(senders)]
            else:
                shared = event_stream(count)  # one generator: each sender takes the next event from it
                shares = [shared] * senders

            async def send_all(share: Iterable[Any]) -> None:
                for message in share:
                    await sender.send(message)

            start = time.monotonic()
            await asyncio.gather(*(send_all(share) for share in shares))
            say("sent", repr(start), repr(time.monotonic()))


# Raw pyzmq + msgpack --------------------------------------------------------------------------------------


def _socket(context: zmq.Context[Any], kind: int) -> zmq.Socket[bytes]:
    socket: zmq.Socket[bytes] = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    return socket


def raw_relay(inbound: str, outbound: str) -> None:
    """PULL -> PUSH, one message at a time, until SIGTERM."""
    context = zmq.Context()
    source, sink = _socket(context, zmq.PULL), _socket(context, zmq.PUSH)
    source.bind(inbound)
    sink.bind(outbound)
    say("ready")
    recv, send = source.recv, sink.send
    while True:
        send(recv())


def raw_push(inbound: str, size: int) -> None:
    """Pack and push ``send N`` dicts of ``size`` bytes."""
    from benchmarks.e2e import plain_messages

    context = zmq.Context()
    socket = _socket(context, zmq.PUSH)
    socket.connect(inbound)
    say("ready")
    send, packb = socket.send, msgpack.packb
    prepared: list[dict[str, Any]] = []
    for line in sys.stdin:
        command, count = line.split()[0], int(line.split()[1])
        if command == "prepare":
            prepared = plain_messages(count, size)
            say("prepared")
            continue
        messages = prepared if len(prepared) == count else plain_messages(count, size)
        prepared = []
        start = time.monotonic()
        for message in messages:
            send(packb(message))
        say("sent", repr(start), repr(time.monotonic()))
    socket.close()
    context.term()


def raw_pull(outbound: str) -> None:
    """Pull and unpack; answer ``expect`` and ``total`` as the handler role does."""
    context = zmq.Context()
    socket = _socket(context, zmq.PULL)
    socket.connect(outbound)
    say("ready")
    recv, unpackb = socket.recv, msgpack.unpackb
    total = 0
    for line in sys.stdin:
        words = line.split()
        if words[0] == "total":
            say("total", total)
            continue
        target, timeout = int(words[1]), float(words[2])
        socket.setsockopt(zmq.RCVTIMEO, round(timeout * 1000))
        say("armed")
        received = 0
        try:
            while received < target:
                unpackb(recv())
                received += 1
        except zmq.Again:
            say("timeout", received)
        else:
            say("done", received, repr(time.monotonic()))
        total += received
    socket.close()
    context.term()


def raw_queue(front: str, back: str) -> None:
    """ROUTER <-> DEALER, draining whatever is queued on each side before polling again, until SIGTERM."""
    context = zmq.Context()
    frontend, backend = _socket(context, zmq.ROUTER), _socket(context, zmq.DEALER)
    frontend.bind(front)
    backend.bind(back)
    poller = zmq.Poller()
    poller.register(frontend, zmq.POLLIN)
    poller.register(backend, zmq.POLLIN)
    say("ready")
    noblock = zmq.NOBLOCK

    def drain(source: zmq.Socket[bytes], sink: zmq.Socket[bytes]) -> None:
        recv, send = source.recv_multipart, sink.send_multipart
        try:
            while True:
                send(recv(noblock))
        except zmq.Again:
            pass

    while True:
        for socket, _ in poller.poll():
            if socket is frontend:
                drain(frontend, backend)
            else:
                drain(backend, frontend)


def raw_echo(back: str) -> None:
    """Unpack each request, answer a packed reply carrying its content, until SIGTERM."""
    context = zmq.Context()
    socket = _socket(context, zmq.DEALER)
    socket.connect(back)
    say("ready")
    recv, send = socket.recv_multipart, socket.send_multipart
    packb, unpackb = msgpack.packb, msgpack.unpackb
    while True:
        client, body = recv()
        reply = unpackb(body)  # the reply carries the request's id, headers and content, as the path's
        reply["s"] = 200
        send([client, packb(reply)])


# Raw nats-py --------------------------------------------------------------------------------------------

NATS_FETCH = 1000  # what one pull asks for at most: our NATS connection's window


async def raw_nats_pull(url: str, subject: str, stream: str) -> None:
    """Consume SUBJECT (JetStream: from STREAM, a durable pull consumer, acked) and count, as ``handler``."""
    import nats
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DiscardPolicy,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )

    from benchmarks.e2e import COUNTER

    nc = await nats.connect(url)
    hit, unpackb = COUNTER.hit, msgpack.unpackb
    loop = asyncio.get_running_loop()
    consuming: asyncio.Task[None] | None = None
    if stream == "-":

        async def on_message(msg: Any) -> None:
            unpackb(msg.data)
            hit()

        await nc.subscribe(subject, cb=on_message, pending_msgs_limit=-1, pending_bytes_limit=-1)
    else:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=[subject],
                retention=RetentionPolicy.INTEREST,
                discard=DiscardPolicy.NEW,
                storage=StorageType.FILE,
                duplicate_window=120.0,
            )
        )
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1)
        subscription = await js.pull_subscribe(subject, durable=stream, stream=stream, config=config)

        async def consume() -> None:
            fetch = subscription.fetch
            while True:
                try:
                    messages = await fetch(NATS_FETCH, timeout=5.0)
                except TimeoutError:
                    continue
                for msg in messages:
                    unpackb(msg.data)
                    hit()
                    await msg.ack()

        consuming = loop.create_task(consume())
    await nc.flush()
    try:
        say("ready")
        async for words in commands():
            if words[0] == "expect":
                await expect(words, lambda wake: wake)
            elif words[0] == "total":
                say("total", COUNTER.total)
            else:
                say("error unknown command", words[0])
    finally:
        if consuming is not None:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)
        await nc.close()


async def raw_nats_push(url: str, subject: str, stream: str, size: int, senders: int) -> None:
    """Publish packed dicts of SIZE bytes to SUBJECT (JetStream: each sender awaiting its PubAck)."""
    import nats

    from benchmarks.e2e import plain_messages

    nc = await nats.connect(url)
    core_publish, js_publish, packb = nc.publish, nc.jetstream().publish, msgpack.packb
    try:
        say("ready")
        prepared: list[dict[str, Any]] = []
        async for words in commands():
            count = int(words[1])
            if words[0] == "prepare":
                prepared = plain_messages(count, size)
                say("prepared")
                continue
            messages = prepared if len(prepared) == count else plain_messages(count, size)
            prepared = []
            start = time.monotonic()
            if stream == "-":
                for message in messages:
                    await core_publish(subject, packb(message))
                await nc.flush()
            else:

                async def send_all(share: Sequence[dict[str, Any]]) -> None:
                    for message in share:  # a Nats-Msg-Id as ours sends, so that a resend is dropped
                        await js_publish(subject, packb(message), headers={"Nats-Msg-Id": uuid4().hex})

                await asyncio.gather(*(send_all(messages[i::senders]) for i in range(senders)))
            say("sent", repr(start), repr(time.monotonic()))
    finally:
        await nc.close()


ROLES: dict[str, Callable[[list[str]], None]] = {
    "handler": lambda args: run_main(handler(args[0], *args[1:2])),
    "drain": lambda args: run_main(drain(args[0], int(args[1]), float(args[2]))),
    "publisher": lambda args: run_main(publisher(args[0], int(args[1]), *args[2:3])),
    "raw-relay": lambda args: raw_relay(args[0], args[1]),
    "raw-push": lambda args: raw_push(args[0], int(args[1])),
    "raw-pull": lambda args: raw_pull(args[0]),
    "raw-queue": lambda args: raw_queue(args[0], args[1]),
    "raw-echo": lambda args: raw_echo(args[0]),
    "raw-nats-pull": lambda args: run_main(raw_nats_pull(args[0], args[1], args[2])),
    "raw-nats-push": lambda args: run_main(
        raw_nats_push(args[0], args[1], args[2], int(args[3]), int(args[4]))
    ),
    "raw-nats-echo": lambda args: run_main(_raw_nats_echo(args[0], args[1])),
}


async def _raw_nats_echo(url: str, stream: str) -> None:
    from benchmarks.raw_nats import raw_nats_echo  # it imports this module: only once this one is loaded

    await raw_nats_echo(url, stream)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the role named by the first argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ROLES:
        print(f"usage: python -m benchmarks.workers {{{','.join(ROLES)}}} ARGS...", file=sys.stderr)
        return 2
    from minos.networks.system import tune_gc

    tune_gc()  # every role, the raw ceilings' too: the same collector settings on both sides of a ratio
    ROLES[args[0]](args[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
