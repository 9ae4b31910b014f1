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
reply goes to the client's private topic, a transient consumer. Its ceiling is raw nats-py doing the
same on the same server (``benchmarks.raw_nats``: requests and replies published into JetStream awaiting
their PubAck, read from pull consumers with standing batch pulls, acknowledged; the handler acknowledges
a request once its reply is stored), in a stream of its own, measured in the same run with the same
in-flight counts; the raw pyzmq ceiling shows in ``nats-request-reply:zmq-ceiling`` rows, as
``nats-events`` shows its raw nats-py ones. CPU per request is read for the client (this process), the
handler and the NATS server, on each side. Skipped, with the reason on stderr, when no NATS server
answers at ``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

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
    keep_in_flight,
    over_nats,
    percentiles,
    plain_messages,
    received_total,
    start_broker,
    timeout_for,
    wire_size,
    worker_argv,
)
from benchmarks.probes import CpuMeter, pids, server_pid
from benchmarks.raw_nats import PULL_BATCH, RawNatsClient
from minos.common import Config
from minos.networks import BrokerClient, BrokerMessageV1
from minos.networks.actors import run_main

__all__ = ["raw_requests", "run", "run_nats"]

SCENARIO = "request-reply"
PATH = "client -> broker -> handler -> client, 3 processes, ipc"
CEILING = (
    "raw pyzmq+msgpack, 3 processes: DEALER -> relay (ROUTER<->DEALER, Python loop) -> DEALER echo, ipc, "
    "same-size dicts each way"
)
STARTUP = 20.0  # seconds a worker may take to print its ready line
NATS_SCENARIO = "nats-request-reply"
NATS_PATH = "client -> NATS JetStream (file) -> handler -> client, 3 processes, tcp"
JETSTREAM_CEILING = (
    "raw nats-py, 2 processes + the same NATS server: request published awaiting its PubAck -> JetStream "
    f"(file, interest) -> durable pull consumer (standing pulls of {PULL_BATCH}) -> reply published awaiting "
    "its PubAck, then the request acked -> the client's pull consumer, each reply acked"
)

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
    return await keep_in_flight(
        requests,
        depth,
        send=client.send,
        receive=client.receive,
        key=lambda request: request.identifier,
        reply_key=lambda reply: reply.identifier,
        what=SCENARIO,
    )


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


# The scenario ---------------------------------------------------------------------------------------------

Processes = dict[str, list[int]]
"""Each part of a side's CPU (``client``, ``handler``, ``server``: the broker, relay or NATS server) and
the processes it reads; the client is this process."""


@dataclass
class _Side:
    """One way of answering the requests: ours, or a ceiling; the sides of a run are measured in turn."""

    make: Callable[[int], Sequence[Any]]
    """Builds a repetition's requests, before the clock starts."""
    run: Callable[[Sequence[Any], int, float], Awaitable[Measurement]]
    """Sends them (requests, in flight, timeout) and times each round trip."""
    processes: Processes


@dataclass
class _Measured:
    """A side's best repetition of one plan, and the CPU each of its parts spent over all repetitions."""

    best: Measurement = (float("inf"), [])
    cpu: dict[str, CpuMeter] = field(default_factory=dict)

    def cpu_us(self, part: str, requests: int) -> float:
        return self.cpu[part].per_message_us(requests)


async def _measure(
    endpoint: str,
    front: str,
    plans: list[tuple[str, int, int]],
    repetitions: int,
    warmup: int,
    processes: dict[str, Processes],
    raw_nats: str | None,
) -> list[tuple[str, int, dict[str, _Measured]]]:
    """Each plan's best repetition of every side, and their CPU meters: ``ours``, ``zmq`` (the raw pyzmq
    ceiling) and, with ``raw_nats`` (the raw stream's name), ``jetstream`` (the raw nats-py ceiling).

    ``processes`` names, for each side, the processes of its parts; this one is every side's client.
    """
    name = f"bench-client-{uuid.uuid4().hex[:8]}"
    config = Config({"name": name, "interfaces": {"broker": broker_config(endpoint)}})
    client = BrokerClient.from_config(config)
    size = wire_size(command_messages(1)[0].with_reply_topic(client.topic))
    context: zmq.Context[Any] = zmq.Context()
    socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)

    async def zmq_run(payloads: Sequence[Any], depth: int, timeout: float) -> Measurement:
        socket.setsockopt(zmq.RCVTIMEO, round(1000 * timeout))
        return _ceiling(socket, payloads, depth)

    sides = {
        "ours": _Side(command_messages, partial(_path, client), processes["ours"]),
        "zmq": _Side(lambda count: plain_messages(count, size), zmq_run, processes["zmq"]),
    }
    raw = RawNatsClient(NATS_URL, raw_nats) if raw_nats is not None else None
    if raw is not None:
        sides["jetstream"] = _Side(
            lambda count: raw_requests(count, size, raw.reply_subject), raw.run, processes["jetstream"]
        )
    results = []
    try:
        socket.connect(front)
        await client.start()
        if raw is not None:
            await raw.start()
        for depth in sorted({depth for _, depth, _ in plans}):
            for side in sides.values():
                await side.run(side.make(warmup), depth, timeout_for(warmup))
        for path, depth, count in plans:
            measured = {
                key: _Measured(cpu={part: CpuMeter(pids) for part, pids in side.processes.items()})
                for key, side in sides.items()
            }
            for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts every side alike
                for key, side in sides.items():
                    requests = side.make(count)
                    meters = measured[key].cpu.values()
                    with ExitStack() as metering:
                        for meter in meters:
                            metering.enter_context(meter)
                        measurement = await side.run(requests, depth, timeout_for(count))
                    measured[key].best = min(measured[key].best, measurement)
            results.append((path, depth, measured))
    finally:
        await client.stop()
        if raw is not None:
            await raw.stop()
        socket.close()
        context.term()
    return results


def raw_requests(count: int, size: int, reply_subject: str) -> list[dict[str, Any]]:
    """``plain_messages`` of ``size`` bytes carrying ``reply_subject`` (``r``), as ours carry their reply topic."""
    payloads = plain_messages(count, size - (len(msgpack.packb({"r": reply_subject})) - 1))
    for payload in payloads:
        payload["r"] = reply_subject
    return payloads


def run(quick: bool) -> list[Result]:
    """Measure request/reply through a broker process, 1 and 100 in flight, next to the raw ceiling."""
    return _run(quick, SCENARIO, PATH, None)


def run_nats(quick: bool) -> list[Result]:
    """Measure request/reply through NATS JetStream next to raw nats-py and raw pyzmq; [] without a server."""
    return over_nats(
        NATS_SCENARIO, lambda endpoint, stream: _run(quick, NATS_SCENARIO, NATS_PATH, endpoint, stream)
    )


def _run(
    quick: bool, scenario: str, path_name: str, nats_endpoint: str | None, raw_stream: str | None = None
) -> list[Result]:
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
        raw_echo = None
        if raw_stream is not None:  # it makes the raw stream, which the raw client's consumer needs
            raw_echo = start(
                Worker("raw-nats-echo", worker_argv("raw-nats-echo", NATS_URL, raw_stream), ready="ready")
            )
        handler.wait_ready(STARTUP)
        echo.wait_ready(STARTUP)
        if raw_echo is not None:
            raw_echo.wait_ready(STARTUP)

        me = [os.getpid()]
        if broker is not None:
            server = pids(broker)
        else:
            nats_server = server_pid("nats-server", urlsplit(NATS_URL).port)
            server = [] if nats_server is None else [nats_server]
        processes = {
            "ours": {"client": me, "handler": pids(handler), "server": server},
            "zmq": {"client": me, "handler": pids(echo), "server": pids(queue)},
        }
        if raw_echo is not None:
            processes["jetstream"] = {"client": me, "handler": pids(raw_echo), "server": server}
        measured = run_main(_measure(endpoint, front, plans, repetitions, warmup, processes, raw_stream))
        depths = {depth for _, depth, _ in plans}  # each warmed up once
        sent = len(depths) * warmup + repetitions * sum(count for _, _, count in plans)
        check_count(f"{scenario}: requests handled (all repetitions)", received_total(handler), sent)
        if raw_echo is not None:
            check_count(f"{scenario} jetstream ceiling: requests handled", received_total(raw_echo), sent)

    counts = {path: count for path, _, count in plans}
    main, zmq_rows = [], []
    for path, _, sides in measured:
        count = counts[path]
        requests = repetitions * count
        for key, side in sides.items():
            check_count(f"{path} ({key}): replies", len(side.best[1]), count)
        ours, zmq_side = sides["ours"], sides["zmq"]
        zmq_p50, zmq_p99 = percentiles(zmq_side.best[1])
        zmq_ceiling = f"{CEILING}; its p50 {zmq_p50:.1f} us, p99 {zmq_p99:.1f} us"
        zmq_server = zmq_side.cpu_us("server", requests)
        row = partial(_row, path=path, count=count, requests=requests, ours=ours)
        if nats_endpoint is None:  # the broker is one of the path's processes: its CPU counts in cpu_us
            on_broker = ours.cpu_us("server", requests)
            main.append(
                row(scenario, zmq_side, zmq_ceiling, zmq_server, on_server=on_broker, server_in_cpu=True)
            )
            continue
        # Over NATS, as nats-events: cpu_us counts the two ends (client, handler), server_cpu_us the server.
        raw = sides["jetstream"]
        on_server = ours.cpu_us("server", requests) if server else None
        raw_server = raw.cpu_us("server", requests) if server else None
        main.append(row(scenario, raw, JETSTREAM_CEILING, raw_server, on_server=on_server))
        zmq_rows.append(
            row(f"{scenario}:zmq-ceiling", zmq_side, zmq_ceiling, zmq_server, on_server=on_server)
        )
    return main + zmq_rows


def _row(
    scenario: str,
    ceiling: _Measured,
    description: str,
    ceiling_server: float | None,
    *,
    path: str,
    count: int,
    requests: int,
    ours: _Measured,
    on_server: float | None,
    server_in_cpu: bool = False,
) -> Result:
    """One row: our side against ``ceiling`` (raw pyzmq, or raw nats-py). ``cpu_us`` counts the two ends, and
    with ``server_in_cpu`` every process measured (the broker process or the raw relay too); the split and
    the servers are given apart either way."""
    rate, ceiling_rate = count / ours.best[0], count / ceiling.best[0]
    p50, p99 = percentiles(ours.best[1])
    ceiling_p50, ceiling_p99 = percentiles(ceiling.best[1])
    ends, ceiling_ends = _ends(ours, requests), _ends(ceiling, requests)
    if server_in_cpu:
        cpu, ceiling_cpu = _total(ours, requests), _total(ceiling, requests)
    else:
        cpu, ceiling_cpu = sum(ends), sum(ceiling_ends)
    return Result(
        scenario=scenario,
        path=path,
        messages=count,
        seconds=ours.best[0],
        msgs_per_s=rate,
        ceiling_msgs_per_s=ceiling_rate,
        ratio=rate / ceiling_rate,
        ceiling=description,
        p50_us=p50,
        p99_us=p99,
        cpu_us=cpu,
        ceiling_cpu_us=ceiling_cpu,
        ceiling_p50_us=ceiling_p50,
        ceiling_p99_us=ceiling_p99,
        server_cpu_us=on_server,
        ceiling_server_cpu_us=ceiling_server,
        cpu_split_us=ends,
        ceiling_cpu_split_us=ceiling_ends,
    )


def _total(side: _Measured, requests: int) -> float:
    """CPU per request of all of ``side``'s processes."""
    return sum(side.cpu_us(part, requests) for part in side.cpu)


def _ends(side: _Measured, requests: int) -> tuple[float, float]:
    """CPU per request of the client and of the handler, rounded to 0.1 us (for the table's a/b cell)."""
    return round(side.cpu_us("client", requests), 1), round(side.cpu_us("handler", requests), 1)
