"""The raw nats-py JetStream request/reply ceiling of ``nats-request-reply``: what our NATS path does, written directly.

Both sides do on the wire what ``transports.nats`` does for a BrokerClient request and its handler's reply,
with nats-py's own API and nothing else (uvloop, as ours):

- A stream of the run's own, as ``jetstream.ensure_stream`` makes it: ``STREAM.>``, file storage, interest
  retention, ``discard: new``, ``max_msgs`` 1,000,000, a 120 s duplicate window.
- The client (``RawNatsClient``, in the benchmark process) publishes each request to ``STREAM.u.order.get``
  with ``js.publish`` (a ``Nats-Msg-Id`` header, as ours) and awaits its PubAck; the request carries the
  subject to answer on, ``STREAM.u.<reply topic>``, as ours carries its reply topic.
- The handler (``raw_nats_echo``, a worker process) reads requests from a durable pull consumer set up as
  ``jetstream.ensure_consumer`` sets up ours (explicit acks, ``ack_wait`` 30 s, no delivery limit, no
  ``max_ack_pending``), unpacks each, publishes the reply with ``js.publish`` awaiting its PubAck, and only
  then acknowledges the request (``msg.ack()``), as our dispatcher does.
- The client reads the replies from a pull consumer of its own (in memory, removed by the server 60 s after
  the client is gone: our transient consumer's settings) and acknowledges each as it takes it.

Pulls are batched as ours: each consumer keeps pull requests for up to ``PULL_BATCH`` messages waiting at
the server (``expires`` 2 s, our ``pull_expires``) and asks for more once fewer than half are left
(``StandingPull``), instead of one fetch per batch. What ours does and this leaves out: the second, idle
(multicast) consumer of each subscription, whose pull request is renewed every 2 s; message frames
(BrokerMessageV1) instead of plain dicts of the same size; the duplicate filter; thread hand-offs.

nats-py's ``js.publish`` is a request per message (an inbox token, a future, a JSON PubAck to parse) and
each reply is published from a task of its own (the subscription's callback must not wait for a PubAck),
so this is the cost of a plain program, not a floor: ours pipelines publishes on one reply subject.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

import msgpack
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from benchmarks.e2e import COUNTER, WorkerError, keep_in_flight
from benchmarks.workers import commands, say

__all__ = [
    "PULL_BATCH",
    "REQUEST_TOKENS",
    "RawNatsClient",
    "StandingPull",
    "consumer_config",
    "raw_nats_echo",
    "stream_config",
]

PULL_BATCH = 500
"""Messages a consumer's pull requests ask for at most: ours share the window (1,000) between a
subscription's two consumers (unicast and multicast)."""
PULL_EXPIRES = 2.0  # seconds a pull request waits at the server: NatsSettings.pull_expires
ACK_WAIT = 30.0  # NatsSettings.ack_wait
TRANSIENT_TTL = 60.0  # NatsSettings.transient_ttl
REQUEST_TOKENS = "u.order.get"
"""The request subject under the stream's name: a UNICAST message to ``order.get``, as ours."""

Measurement = tuple[float, list[int]]
"""Seconds for all the requests, and each request's latency in nanoseconds."""


def stream_config(stream: str) -> StreamConfig:
    """The stream ``jetstream.ensure_stream`` makes, named ``stream``, taking ``stream.>``."""
    return StreamConfig(
        name=stream,
        subjects=[f"{stream}.>"],
        retention=RetentionPolicy.INTEREST,
        discard=DiscardPolicy.NEW,
        max_msgs=1_000_000,
        storage=StorageType.FILE,
        num_replicas=1,
        duplicate_window=120.0,
    )


def consumer_config(name: str, subject: str, *, transient: bool) -> ConsumerConfig:
    """A durable pull consumer of ``subject`` set up as ``jetstream.ensure_consumer`` sets up ours."""
    return ConsumerConfig(
        durable_name=name,
        filter_subject=subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT,
        max_deliver=-1,
        max_ack_pending=-1,
        inactive_threshold=TRANSIENT_TTL if transient else None,
        mem_storage=True if transient else None,
    )


class StandingPull:
    """Keeps pull requests for up to ``PULL_BATCH`` messages of one consumer waiting at the server.

    Asks for more once fewer than half of what it asked for is left to come (or a request expired), as
    ``NatsConsumers.pull_requests`` does; each message goes to ``on_message``, awaited in nats-py's
    subscription task, in order.

    Args:
        nc: The connected client.
        stream: The stream's name.
        consumer: The durable consumer's name.
        on_message: Takes each message delivered (status messages are handled here).
    """

    def __init__(
        self, nc: Client, stream: str, consumer: str, on_message: Callable[[Msg], Awaitable[None]]
    ) -> None:
        self._nc = nc
        self._api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._on_message = on_message
        self._inbox = ""
        self._outstanding = 0  # messages asked for and not delivered yet

    async def start(self) -> None:
        """Listen on an inbox of its own, then send the first pull request."""
        self._inbox = self._nc.new_inbox()
        await self._nc.subscribe(self._inbox, cb=self._deliver)
        await self._refill()

    async def _deliver(self, msg: Msg) -> None:
        if not msg.reply:  # a status: the request expired (408, with what it still had) or ended
            pending = (msg.headers or {}).get("Nats-Pending-Messages")
            if pending is not None:
                self._outstanding = max(0, self._outstanding - int(pending))
            elif (msg.headers or {}).get("Status") != "100":
                self._outstanding = 0
        else:
            self._outstanding -= 1
            await self._on_message(msg)
        if self._outstanding * 2 < PULL_BATCH:
            await self._refill()

    async def _refill(self) -> None:
        want = PULL_BATCH - self._outstanding
        self._outstanding = PULL_BATCH
        payload = b'{"batch":%d,"expires":%d}' % (want, int(PULL_EXPIRES * 1e9))
        await self._nc.publish(self._api, payload, reply=self._inbox)


def _msg_id() -> dict[str, str]:
    """A ``Nats-Msg-Id`` header, as ours sends: JetStream drops a resend within the duplicate window."""
    return {"Nats-Msg-Id": uuid4().hex}


class RawNatsClient:
    """The client side, in the benchmark process: requests awaiting their PubAck, replies from a pull consumer.

    Args:
        url: The NATS server.
        stream: The stream the handler (``raw_nats_echo``) made.
    """

    def __init__(self, url: str, stream: str) -> None:
        self.url = url
        self.stream = stream
        token = f"bench-raw.reply.{uuid4().hex}"
        self.reply_subject = f"{stream}.u.{token}"
        """Where the handler answers: the client's own subject, as a BrokerClient's private topic."""
        self._consumer = f"raw-reply-{uuid4().hex[:12]}"
        self._nc: Client | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        """Connect, make the reply consumer, and keep a pull request waiting on it."""
        nc = self._nc = await nats.connect(self.url)
        js = nc.jetstream()
        await js.add_consumer(
            self.stream, consumer_config(self._consumer, self.reply_subject, transient=True)
        )
        await StandingPull(nc, self.stream, self._consumer, self._on_reply).start()
        await nc.flush()

    async def stop(self) -> None:
        """Delete the reply consumer and close the connection."""
        nc = self._nc
        if nc is not None:
            try:
                await nc.jetstream().delete_consumer(self.stream, self._consumer)
            finally:
                await nc.close()

    async def _on_reply(self, msg: Msg) -> None:
        reply = msgpack.unpackb(msg.data)
        await msg.ack()
        self._replies.put_nowait(reply)

    async def run(self, payloads: Sequence[dict[str, Any]], depth: int, timeout: float) -> Measurement:
        """Send ``payloads`` as requests, ``depth`` in flight, each timed from its send to its reply.

        Raises:
            WorkerError: Not every reply arrived within ``timeout`` seconds, or one answered no request.
        """
        try:
            async with asyncio.timeout(timeout):
                if depth == 1:
                    return await self._one_at_a_time(payloads)
                return await self._in_flight(payloads, depth)
        except TimeoutError:
            raise WorkerError(
                f"raw nats: {len(payloads)} requests, {depth} in flight, were not all answered within {timeout} s"
            ) from None

    async def _one_at_a_time(self, payloads: Sequence[dict[str, Any]]) -> Measurement:
        assert self._nc is not None
        publish, get = self._nc.jetstream().publish, self._replies.get
        subject, packb, clock = f"{self.stream}.{REQUEST_TOKENS}", msgpack.packb, time.perf_counter_ns
        latencies = []
        start = time.perf_counter()
        for payload in payloads:
            sent = clock()
            await publish(subject, packb(payload), headers=_msg_id())
            reply = await get()
            latencies.append(clock() - sent)
            if reply["i"] != payload["i"]:
                raise WorkerError(f"raw nats: the reply to {payload['i']!r} answers {reply['i']!r}")
        return time.perf_counter() - start, latencies

    async def _in_flight(self, payloads: Sequence[dict[str, Any]], depth: int) -> Measurement:
        assert self._nc is not None
        publish, packb = self._nc.jetstream().publish, msgpack.packb
        subject = f"{self.stream}.{REQUEST_TOKENS}"
        return await keep_in_flight(
            payloads,
            depth,
            send=lambda payload: publish(subject, packb(payload), headers=_msg_id()),
            receive=self._replies.get,
            key=lambda payload: payload["i"],
            reply_key=lambda reply: reply["i"],
            what="raw nats",
        )


async def raw_nats_echo(url: str, stream: str) -> None:
    """The handler side, a worker process: make the stream and the request consumer, answer each request.

    Prints ``ready`` once its pull request waits; answers ``total`` with the requests handled.
    """
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(stream_config(stream))
    consumer = f"raw-requests-{uuid4().hex[:12]}"
    await js.add_consumer(stream, consumer_config(consumer, f"{stream}.{REQUEST_TOKENS}", transient=False))
    loop = asyncio.get_running_loop()
    publish, packb, unpackb, hit = js.publish, msgpack.packb, msgpack.unpackb, COUNTER.hit
    handling: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        reply = unpackb(msg.data)  # the reply carries the request's id, headers and content, as ours
        subject = reply.pop("r")
        reply["s"] = 200
        await publish(subject, packb(reply), headers=_msg_id())
        await msg.ack()  # only once the reply is stored, as our dispatcher
        hit()

    def done(task: asyncio.Task[None]) -> None:
        handling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            print(f"raw-nats-echo: a request failed: {task.exception()!r}", file=sys.stderr, flush=True)

    async def on_request(msg: Msg) -> None:
        task = loop.create_task(handle(msg))  # the subscription's task must not wait for the reply's PubAck
        handling.add(task)
        task.add_done_callback(done)

    await StandingPull(nc, stream, consumer, on_request).start()
    await nc.flush()
    try:
        say("ready")
        async for words in commands():
            if words[0] == "total":
                say("total", COUNTER.total)
            else:
                say("error unknown command", words[0])
    finally:
        for task in list(handling):
            task.cancel()
        await asyncio.gather(*handling, return_exceptions=True)
        await nc.close()
