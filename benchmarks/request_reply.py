"""The ``request-reply`` scenario: BrokerClient requests answered by a handler process, over ``ipc://``.

Path: a BrokerClient in this process -> the broker process (``python -m minos.networks broker``) -> a
handler process (a BrokerPort running BenchService's command, which echoes the request's content) ->
the reply back through the broker to the client's private topic. Measured twice:

- ``1 in flight``: ``await client.send(request)`` then ``await client.receive()``, one request after
  the other; every round trip is timed, for p50 and p99.
- ``100 in flight``: 100 requests are sent at once, and each reply received sends the next request,
  so 100 are always outstanding. A request's latency runs from its send to its reply.

Each reply must carry the identifier of a request still outstanding; the handler process counts what
it handled, and anything but exactly the requests sent fails the scenario.

Ceiling, measured in the same run with the same processes, hops and in-flight counts: raw pyzmq +
msgpack: a DEALER in this process -> a relay process (ROUTER <-> DEALER, Python, draining each side)
-> a DEALER echo worker process that unpacks each request and packs a reply of the same size.
Its latencies are quoted in the ceiling's description.

``nats-request-reply`` runs the same client and handler on ``transport: nats``: the NATS JetStream
server (file storage, a stream of the run's own, deleted afterwards) takes the broker's place; the
reply goes to the client's private topic, a transient consumer. Same ceiling, measured in the same run;
skipped, with the reason on stderr, when no NATS server answers at ``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgpack
import zmq

from benchmarks import Result
from benchmarks.e2e import (
    NATS_URL,
    Worker,
    WorkerError,
    Workers,
    broker_config,
    check_count,
    command_messages,
    ipc_directory,
    nats_stream,
    percentiles,
    plain_messages,
    received_total,
    start_broker,
    timeout_for,
    wire_size,
    worker_argv,
)
from benchmarks.probes import CpuMeter, pids
from minos.common import Config
from minos.networks import BrokerClient, BrokerMessageV1
from minos.networks.actors import run_main

__all__ = ["run", "run_nats"]

SCENARIO = "request-reply"
PATH = "client -> broker -> handler -> client, 3 processes, ipc"
CEILING = (
    "raw pyzmq+msgpack, 3 processes: DEALER -> relay (ROUTER<->DEALER, Python loop) -> DEALER echo, ipc, "
    "same-size dicts each way"
)
STARTUP = 20.0  # seconds a worker may take to print its ready line
NATS_SCENARIO = "nats-request-reply"
NATS_PATH = "client -> NATS JetStream (file) -> handler -> client, 3 processes, tcp"

Measurement = tuple[float, list[int]]
"""Seconds for all the requests, and each request's latency in nanoseconds."""


# The path ---------------------------------------------------------------------------------------------


async def _one_at_a_time(client: BrokerClient, requests: Sequence[BrokerMessageV1]) -> Measurement:
    latencies = []
    clock = time.perf_counter_ns
    send, receive = client.send, client.receive
    start = time.perf_counter()
    for request in requests:
        sent = clock()
        await send(request)
        reply = await receive()
        latencies.append(clock() - sent)
        if reply.identifier != request.identifier:
            raise WorkerError(f"{SCENARIO}: the reply to {request.identifier} answers {reply.identifier}")
    return time.perf_counter() - start, latencies


async def _in_flight(client: BrokerClient, requests: Sequence[BrokerMessageV1], depth: int) -> Measurement:
    clock = time.perf_counter_ns
    loop = asyncio.get_running_loop()
    sent_at: dict[uuid.UUID, int] = {}
    latencies: list[int] = []
    sending: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []
    queue = iter(requests)

    def sent(task: asyncio.Task[None]) -> None:
        sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    def send_next() -> None:
        request = next(queue, None)
        if request is not None:
            sent_at[request.identifier] = clock()
            task = loop.create_task(client.send(request))
            sending.add(task)
            task.add_done_callback(sent)

    start = time.perf_counter()
    try:
        for _ in range(depth):
            send_next()
        for _ in range(len(requests)):
            reply = await client.receive()
            received = clock()
            started = sent_at.pop(reply.identifier, None)
            if started is None:
                raise WorkerError(f"{SCENARIO}: a reply answers {reply.identifier}, no request outstanding")
            latencies.append(received - started)
            send_next()
            if failures:
                raise failures[0]
        seconds = time.perf_counter() - start
    finally:
        for task in list(sending):
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
    return seconds, latencies


async def _path(
    client: BrokerClient, requests: Sequence[BrokerMessageV1], depth: int, timeout: float
) -> Measurement:
    count = len(requests)
    try:
        async with asyncio.timeout(timeout):
            if depth == 1:
                return await _one_at_a_time(client, requests)
            return await _in_flight(client, requests, depth)
    except TimeoutError:
        raise WorkerError(
            f"{SCENARIO}: {count} requests, {depth} in flight, were not all answered within {timeout} s"
        ) from None


# The ceiling ------------------------------------------------------------------------------------------


def _ceiling(socket: zmq.Socket[bytes], payloads: Sequence[dict[str, Any]], depth: int) -> Measurement:
    clock = time.perf_counter_ns
    send, recv = socket.send, socket.recv
    packb, unpackb = msgpack.packb, msgpack.unpackb
    sent_at: dict[bytes, int] = {}
    latencies: list[int] = []
    queue = iter(payloads)

    def send_next() -> None:
        payload = next(queue, None)
        if payload is not None:
            sent_at[payload["i"]] = clock()
            send(packb(payload))

    start = time.perf_counter()
    for _ in range(depth):
        send_next()
    for _ in range(len(payloads)):
        try:
            reply = unpackb(recv())
        except zmq.Again:
            raise WorkerError(
                f"{SCENARIO} ceiling: {len(latencies)} of {len(payloads)} replies, {depth} in flight, in time"
            ) from None
        received = clock()
        started = sent_at.pop(reply["i"], None)
        if started is None:
            raise WorkerError(f"{SCENARIO} ceiling: a reply answers no request outstanding")
        latencies.append(received - started)
        send_next()
    return time.perf_counter() - start, latencies


# The scenario -----------------------------------------------------------------------------------------


async def _measure(
    endpoint: str,
    front: str,
    plans: list[tuple[str, int, int]],
    repetitions: int,
    warmup: int,
    meters: tuple[list[int], list[int]],
) -> list[tuple[str, int, Measurement, Measurement, CpuMeter, CpuMeter]]:
    """Each plan's best repetition of the path and of the ceiling, and the CPU meters of both.

    ``meters`` names the processes of the path and of the ceiling other than this one, which both use.
    """
    name = f"bench-client-{uuid.uuid4().hex[:8]}"
    config = Config({"name": name, "interfaces": {"broker": broker_config(endpoint)}})
    context: zmq.Context[Any] = zmq.Context()
    socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    client = BrokerClient.from_config(config)
    size = wire_size(command_messages(1)[0].with_reply_topic(client.topic))
    results = []
    try:
        socket.connect(front)
        await client.start()
        for depth in sorted({depth for _, depth, _ in plans}):
            socket.setsockopt(zmq.RCVTIMEO, round(1000 * timeout_for(warmup)))
            _ceiling(socket, plain_messages(warmup, size), depth)
            await _path(client, command_messages(warmup), depth, timeout_for(warmup))
        for path, depth, count in plans:
            socket.setsockopt(zmq.RCVTIMEO, round(1000 * timeout_for(count)))
            best: Measurement = (float("inf"), [])
            ceiling_best: Measurement = (float("inf"), [])
            cpu = CpuMeter([os.getpid(), *meters[0]])
            ceiling_cpu = CpuMeter([os.getpid(), *meters[1]])
            for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts both alike
                payloads = plain_messages(count, size)
                with ceiling_cpu:
                    ceiling_best = min(ceiling_best, _ceiling(socket, payloads, depth))
                requests = command_messages(count)
                with cpu:
                    best = min(best, await _path(client, requests, depth, timeout_for(count)))
            results.append((path, count, best, ceiling_best, cpu, ceiling_cpu))
    finally:
        await client.stop()
        socket.close()
        context.term()
    return results


def run(quick: bool) -> list[Result]:
    """Measure request/reply through a broker process, 1 and 100 in flight, next to the raw ceiling."""
    return _run(quick, SCENARIO, PATH, None)


def run_nats(quick: bool) -> list[Result]:
    """Measure request/reply through NATS JetStream next to the raw ceiling; [] without a server."""
    with nats_stream() as endpoint:
        if endpoint is None:
            print(f"{NATS_SCENARIO}: skipped, no NATS server answers at {NATS_URL}", file=sys.stderr)
            return []
        return _run(quick, NATS_SCENARIO, NATS_PATH, endpoint)


def _run(quick: bool, scenario: str, path_name: str, nats_endpoint: str | None) -> list[Result]:
    repetitions = 1 if quick else 3
    warmup = 100 if quick else 1_000
    plans = [  # (path, requests in flight, requests per repetition)
        (f"{path_name}, 1 in flight", 1, 300 if quick else 2_000),
        (f"{path_name}, 100 in flight", 100, 2_000 if quick else 20_000),
    ]
    with ipc_directory() as directory, Workers() as workers:
        endpoint = nats_endpoint or f"ipc://{directory}/broker"
        front, back = f"ipc://{directory}/raw-front", f"ipc://{directory}/raw-back"
        start = workers.start

        broker = start(start_broker(endpoint)) if nats_endpoint is None else None
        queue = start(Worker("raw-queue", worker_argv("raw-queue", front, back), ready="ready", stdin=False))
        if broker is not None:
            broker.wait_ready(STARTUP)
        queue.wait_ready(STARTUP)
        handler = start(Worker("handler", worker_argv("handler", endpoint), ready="ready"))
        echo = start(Worker("raw-echo", worker_argv("raw-echo", back), ready="ready", stdin=False))
        handler.wait_ready(STARTUP)
        echo.wait_ready(STARTUP)

        ours = pids(handler) if broker is None else pids(broker, handler)
        measured = run_main(_measure(endpoint, front, plans, repetitions, warmup, (ours, pids(queue, echo))))
        depths = {depth for _, depth, _ in plans}  # each warmed up once
        sent = len(depths) * warmup + repetitions * sum(count for _, _, count in plans)
        check_count(f"{scenario}: requests handled (all repetitions)", received_total(handler), sent)

    results = []
    for path, count, (seconds, latencies), (ceiling_seconds, ceiling_latencies), cpu, ceiling_cpu in measured:
        check_count(f"{path}: replies", len(latencies), count)
        check_count(f"{path} ceiling: replies", len(ceiling_latencies), count)
        p50, p99 = percentiles(latencies)
        ceiling_p50, ceiling_p99 = percentiles(ceiling_latencies)
        rate, ceiling_rate = count / seconds, count / ceiling_seconds
        results.append(
            Result(
                scenario=scenario,
                path=path,
                messages=count,
                seconds=seconds,
                msgs_per_s=rate,
                ceiling_msgs_per_s=ceiling_rate,
                ratio=rate / ceiling_rate,
                ceiling=f"{CEILING}; its p50 {ceiling_p50:.1f} us, p99 {ceiling_p99:.1f} us",
                p50_us=p50,
                p99_us=p99,
                # With NATS the server's CPU is not ours to read: the path's figure would leave it out.
                cpu_us=cpu.per_message_us(repetitions * count) if nats_endpoint is None else None,
                ceiling_cpu_us=ceiling_cpu.per_message_us(repetitions * count),
            )
        )
    return results
