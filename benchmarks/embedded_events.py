"""The ``embedded-events`` scenario: events through the embedded broker, all in one process.

Path: BrokerPublisher -> the embedded broker (``inproc://``, BrokerPort.from_config with
``embedded: true``) -> the port's dispatcher actor -> BenchService's event handler, which only counts.
Timed from the first ``send`` to the handler counting the last message: the receiving side counts,
and a repetition whose handler does not see every message sent fails the scenario. The publisher
sends from ``SENDERS`` coroutines, each awaiting the broker's acceptance of one message at a time.

Ceiling, measured in the same run on the same machine: raw pyzmq + msgpack in one process with the same
hops: the calling thread packs and PUSHes dicts of the same wire size to a relay thread (PULL -> PUSH),
whose consumer thread PULLs and unpacks them, all over ``inproc://``. The ceiling has no acceptances
and no acknowledgements; the path has both (at-least-once delivery), and pays for them.

Throughput only: with the publisher saturating the path, a message's latency is the time it queues,
not a property of the path (request-reply measures latency).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import msgpack
import zmq

from benchmarks import Result
from benchmarks.e2e import (
    COUNTER,
    BenchService,
    WorkerError,
    check_count,
    event_messages,
    plain_messages,
    timeout_for,
    wire_size,
)
from minos.common import Config
from minos.networks import BrokerMessageV1, BrokerPublisher
from minos.networks.actors import run_main
from minos.networks.brokers import BrokerPort

__all__ = ["SENDERS", "embedded_config", "measure_path", "run"]

SCENARIO = "embedded-events"
PATH = "publisher -> inproc broker -> dispatcher -> handler"
SENDERS = 1000
"""Coroutines sending at once, each awaiting the broker's acceptance before its next send."""
CEILING = (
    "raw pyzmq+msgpack, 1 process: PUSH thread -> relay thread (PULL->PUSH) -> PULL thread unpacking, "
    "inproc, same-size dicts; no acceptances, no acks"
)


class _RawPipeline:
    """The ceiling: a relay thread and a consumer thread, fed by the calling thread."""

    def __init__(self) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        name = uuid.uuid4().hex[:8]
        self._inbound, self._outbound = f"inproc://raw-in-{name}", f"inproc://raw-out-{name}"
        self._bound = threading.Barrier(3, timeout=10)
        self._threads = [
            threading.Thread(target=self._relay, name="bench-raw-relay", daemon=True),
            threading.Thread(target=self._consume, name="bench-raw-consumer", daemon=True),
        ]
        self._target = 0
        self._received = 0
        self.total = 0
        self._done = threading.Event()
        self._finished_at = 0.0
        self._push: zmq.Socket[bytes] | None = None

    def __enter__(self) -> _RawPipeline:
        for thread in self._threads:
            thread.start()
        try:
            self._bound.wait()  # the relay has bound and the consumer connected
            push = self._push = self.context.socket(zmq.PUSH)
            push.connect(self._inbound)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        alive = self._close()
        if alive and exc_type is None:
            raise WorkerError(f"{SCENARIO} ceiling: the threads {alive} did not stop")

    def _close(self) -> list[str]:
        """Stop both threads and close everything; return the names of threads that would not stop."""
        self._bound.abort()  # a thread still waiting for the others gives up
        if self._push is not None:
            try:
                self._push.send(b"", zmq.NOBLOCK)  # the end: the relay passes it on, and both threads return
            except zmq.Again:
                pass
            self._push.close(linger=1000)
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(10)
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if not alive:  # term() would wait for their sockets forever
            self.context.term()
        return alive

    def _relay(self) -> None:
        source, sink = self.context.socket(zmq.PULL), self.context.socket(zmq.PUSH)
        try:
            source.bind(self._inbound)
            sink.bind(self._outbound)
            self._bound.wait()
            recv, send = source.recv, sink.send
            while message := recv():
                send(message)
            send(b"")
        finally:
            source.close(linger=0)
            sink.close(linger=0)

    def _consume(self) -> None:
        socket = self.context.socket(zmq.PULL)
        try:
            socket.connect(self._outbound)
            self._bound.wait()
            recv, unpackb, done = socket.recv, msgpack.unpackb, self._done
            while body := recv():
                unpackb(body)
                self._received += 1
                if self._received == self._target:
                    self._finished_at = time.perf_counter()
                    done.set()
        finally:
            self.total += self._received
            socket.close(linger=0)

    def measure(self, payloads: Sequence[dict[str, Any]]) -> float:
        """Send ``payloads`` through; the seconds from the first send until the consumer had them all."""
        assert self._push is not None
        self.total += self._received
        self._received, self._target = 0, len(payloads)
        self._done.clear()
        send, packb = self._push.send, msgpack.packb
        start = time.perf_counter()
        for payload in payloads:
            send(packb(payload))
        if not self._done.wait(timeout_for(len(payloads))):
            raise WorkerError(
                f"{SCENARIO} ceiling: the consumer got {self._received} of {len(payloads)} messages in time"
            )
        check_count(f"{SCENARIO} ceiling", self._received, len(payloads))
        return self._finished_at - start


def embedded_config(name: str, durable_path: str | None = None) -> Config:
    """A service running BenchService behind an embedded broker at ``inproc://NAME``; durable with a path."""
    broker: dict[str, Any] = {"endpoint": f"inproc://{name}", "embedded": True}
    if durable_path is not None:
        broker["durable"] = {"path": durable_path}
    return Config({"name": name, "services": [BenchService], "interfaces": {"broker": broker}})


async def measure_path(
    publisher: BrokerPublisher, messages: list[BrokerMessageV1], timeout: float, senders: int = SENDERS
) -> float:
    """Publish ``messages`` from ``senders`` coroutines; the seconds from the first send until the handler
    counted the last one."""
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()
    COUNTER.arm(len(messages), lambda: loop.call_soon_threadsafe(reached.set))
    send = publisher.send

    async def send_all(share: Sequence[BrokerMessageV1]) -> None:
        for message in share:
            await send(message)

    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(send_all(messages[i::senders]) for i in range(senders)))
            await reached.wait()
    except TimeoutError:
        raise WorkerError(
            f"{SCENARIO}: the handler counted {COUNTER.since_armed} of {len(messages)} messages "
            f"within {timeout} s"
        ) from None
    check_count(SCENARIO, COUNTER.since_armed, len(messages))
    return COUNTER.reached_at - start


async def _run(messages: int, repetitions: int, warmup: int) -> Result:
    config = embedded_config(f"bench-embedded-{uuid.uuid4().hex[:8]}")
    size = wire_size(event_messages(1)[0])
    sent = 0
    handled_before = COUNTER.total
    port = BrokerPort.from_config(config)
    publisher = BrokerPublisher.from_config(config)
    best, ceiling_best = float("inf"), float("inf")
    with _RawPipeline() as ceiling:
        try:
            await port.start()
            await publisher.start()
            ceiling.measure(plain_messages(warmup, size))
            await measure_path(publisher, event_messages(warmup), timeout_for(warmup))
            sent += warmup
            for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts both alike
                ceiling_best = min(ceiling_best, ceiling.measure(plain_messages(messages, size)))
                best = min(
                    best, await measure_path(publisher, event_messages(messages), timeout_for(messages))
                )
                sent += messages
        finally:
            await publisher.stop()
            await port.stop()
    # Stopped: nothing can be handled any more, so a late duplicate would show here.
    check_count(f"{SCENARIO} (all repetitions)", COUNTER.total - handled_before, sent)
    check_count(f"{SCENARIO} ceiling (all repetitions)", ceiling.total, sent)
    rate, ceiling_rate = messages / best, messages / ceiling_best
    return Result(
        scenario=SCENARIO,
        path=PATH,
        messages=messages,
        seconds=best,
        msgs_per_s=rate,
        ceiling_msgs_per_s=ceiling_rate,
        ratio=rate / ceiling_rate,
        ceiling=CEILING,
    )


def run(quick: bool) -> list[Result]:
    """Measure events through the embedded broker next to the raw in-process ceiling."""
    messages = 2_000 if quick else 50_000
    repetitions = 1 if quick else 3
    warmup = 200 if quick else 2_000
    return [run_main(_run(messages, repetitions, warmup))]
