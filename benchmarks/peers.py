"""The ``peer-*`` scenarios: our paths next to FastStream's over NATS, JetStream, RabbitMQ and Redis, same run.

Users ask "faster than what I would use otherwise?". Each scenario runs one of our paths and the same
workload on FastStream (the peer, ``benchmarks.peer_workers``), repetitions interleaved, and reports
``ratio = ours / peer``: above 1.0 we are faster. Both sides get the same message (our benchmark event;
FastStream sends it as JSON, its default), the same count, the same concurrency (1,000 publishing
coroutines each awaiting the broker's answer; 1 or 100 requests in flight), acknowledgements after the
handler where the peer's transport has them, uvloop, logging off, and the same processes: a publisher (or
client) process and a handler process, with the broker or server between them.

Which of ours: against core NATS, RabbitMQ and Redis streams, our ZeroMQ broker process
(``broker-events``, ``request-reply``); against FastStream over JetStream, ours over JetStream too
(``nats-events``, ``nats-request-reply``), each in a stream of its own.

CPU per message is read for the client processes (publisher or client, and handler: ``cpu_us``, peer
``ceiling_cpu_us``) and for the broker or server process (``server_cpu_us``, ``ceiling_server_cpu_us``):
our broker process, or the local ``nats-server``, RabbitMQ (``beam.smp``) or ``redis-server`` when its
``/proc`` entry is readable (a server other programs use at the same time counts their work too).

A scenario is skipped, with one line on stderr and no result, when FastStream is not installed
(``pip install -e '.[peers]'``) or its server does not answer; a skip never fails the run.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

from benchmarks import Result, probes
from benchmarks.e2e import (
    NATS_URL,
    Worker,
    WorkerError,
    Workers,
    check_count,
    delete_nats_stream,
    ipc_directory,
    measure_events,
    nats_stream,
    received_total,
    start_broker,
    worker_argv,
)
from benchmarks.probes import CpuMeter, pids

__all__ = ["SERVERS", "run_events", "run_request_reply", "skip_reason"]

SERVERS = {
    "nats": NATS_URL,
    "jetstream": NATS_URL,
    "rabbit": os.environ.get("MINOS_BENCH_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    "redis": os.environ.get("MINOS_BENCH_REDIS_URL", "redis://127.0.0.1:6379"),
}
"""The server of each peer kind; ``MINOS_BENCH_{NATS,RABBIT,REDIS}_URL`` override them."""
DESCRIPTIONS = {
    "nats": "core NATS (no acks)",
    "jetstream": "NATS JetStream (file, durable pull consumer, PubAck, acked)",
    "rabbit": "RabbitMQ (publisher confirms, acked)",
    "redis": "Redis streams (consumer group, XACK)",
}
DRIVERS = {"nats": "nats", "jetstream": "nats", "rabbit": "aio_pika", "redis": "redis"}
SERVER_PROCESSES = {
    "nats": "nats-server",
    "jetstream": "nats-server",
    "rabbit": "beam.smp",
    "redis": "redis-server",
}
SENDERS = 1000  # as broker-events: coroutines publishing at once, each awaiting the broker's answer
STARTUP = 30.0  # seconds a worker may take to print its ready line


def peer_timeout(messages: int) -> float:
    """How long ``messages`` may take on either side before a repetition counts as stuck.

    ``timeout_for`` expects our rates; FastStream over RabbitMQ or Redis did 250-500 a second here.
    """
    return 60.0 + messages / 50


def skip_reason(kind: str) -> str | None:
    """Why the peer scenarios of ``kind`` cannot run here, or None when they can."""
    if importlib.util.find_spec("faststream") is None or importlib.util.find_spec(DRIVERS[kind]) is None:
        return "FastStream is not installed (pip install -e '.[peers]')"
    parts = urlsplit(SERVERS[kind])
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1.0).close()
    except OSError:
        return f"no server answers at {parts.hostname}:{parts.port}"
    return None


def _peer_name() -> str:
    try:
        return f"FastStream {version('faststream')}"
    except PackageNotFoundError:  # pragma: no cover (checked by skip_reason)
        return "FastStream"


def server_pid(kind: str) -> int | None:
    """The pid of the local server process of ``kind``, or None."""
    return probes.server_pid(
        SERVER_PROCESSES[kind], None if kind == "rabbit" else urlsplit(SERVERS[kind]).port
    )


@contextmanager
def _peer_destination(kind: str) -> Iterator[str]:
    """A fresh subject, stream or queue name for the peer, whatever it leaves on the server removed after."""
    name = f"benchpeer-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        if kind == "jetstream":
            delete_nats_stream(name)
        elif kind == "redis":
            _delete_redis_key(name)
        # core NATS keeps nothing; the RabbitMQ queue is auto-deleted with its consumer


def _delete_redis_key(name: str) -> None:
    import redis.asyncio

    from minos.networks.actors import run_main

    async def delete() -> None:
        client = redis.asyncio.Redis.from_url(SERVERS["redis"])
        try:
            await client.delete(name)
        finally:
            await client.aclose()

    run_main(delete())


@contextmanager
def _our_endpoint(kind: str, scenario: str) -> Iterator[str]:
    """Our broker's endpoint: NATS JetStream against FastStream's JetStream, else a broker process's ipc."""
    if kind == "jetstream":
        with nats_stream() as endpoint:
            if endpoint is None:
                raise WorkerError(f"{scenario}: the NATS server at {NATS_URL} went away")
            yield endpoint
    else:
        with ipc_directory() as directory:
            yield f"ipc://{directory}/broker"


def _peer_argv(role: str, *args: object) -> list[str]:
    return [sys.executable, "-m", "benchmarks.peer_workers", role, *map(str, args)]


def _meters(
    ours: list[Worker], our_server: int | None, peer: list[Worker], peer_server: int | None
) -> list[CpuMeter]:
    """CPU meters: our clients, our broker or server, the peer's clients, the peer's server."""
    return [
        CpuMeter(pids(*ours)),
        CpuMeter([] if our_server is None else [our_server]),
        CpuMeter(pids(*peer)),
        CpuMeter([] if peer_server is None else [peer_server]),
    ]


@contextmanager
def _both(first: CpuMeter, second: CpuMeter) -> Iterator[None]:
    with first, second:
        yield


def _cpu(meter: CpuMeter, messages: int) -> float | None:
    return meter.per_message_us(messages) if meter.pids else None


# Events -------------------------------------------------------------------------------------------------


def run_events(kind: str, quick: bool) -> list[Result]:
    """Events: our publisher -> broker -> handler next to FastStream's over ``kind``; [] when skipped."""
    scenario = f"peer-{kind}-events"
    reason = skip_reason(kind)
    if reason is not None:
        print(f"{scenario}: skipped, {reason}", file=sys.stderr)
        return []
    messages = 500 if quick else 5_000  # FastStream over RabbitMQ or Redis: 300-500 a second here
    repetitions = 1 if quick else 3
    warmup = 100 if quick else 500
    url = SERVERS[kind]
    with _our_endpoint(kind, scenario) as endpoint, _peer_destination(kind) as name, Workers() as workers:
        start = workers.start
        broker = start(start_broker(endpoint)) if kind != "jetstream" else None
        peer_handler = start(
            Worker("peer-handler", _peer_argv("peer-handler", kind, url, name, "events"), ready="ready")
        )
        if broker is not None:
            broker.wait_ready(STARTUP)
        handler = start(Worker("handler", worker_argv("handler", endpoint), ready="ready"))
        handler.wait_ready(STARTUP)
        peer_handler.wait_ready(STARTUP)  # subscribed: the queue, stream or group exists from now on
        publisher = start(Worker("publisher", worker_argv("publisher", endpoint, SENDERS), ready="ready"))
        peer_publisher = start(
            Worker("peer-publisher", _peer_argv("peer-publisher", kind, url, name, SENDERS), ready="ready")
        )
        publisher.wait_ready(STARTUP)
        peer_publisher.wait_ready(STARTUP)

        measure_events(peer_publisher, peer_handler, warmup, timeout=peer_timeout(warmup))
        measure_events(publisher, handler, warmup, timeout=peer_timeout(warmup))
        our_server = broker.process.pid if broker is not None else server_pid(kind)
        cpu, server_cpu, peer_cpu, peer_server_cpu = _meters(
            [publisher, handler], our_server, [peer_publisher, peer_handler], server_pid(kind)
        )
        best, peer_best = float("inf"), float("inf")
        for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts both alike
            peer_meters = _both(peer_cpu, peer_server_cpu)
            peer_best = min(
                peer_best,
                measure_events(peer_publisher, peer_handler, messages, peer_meters, peer_timeout(messages)),
            )
            ours_meters = _both(cpu, server_cpu)
            best = min(
                best, measure_events(publisher, handler, messages, ours_meters, peer_timeout(messages))
            )
        sent = warmup + repetitions * messages
        check_count(f"{scenario} (all repetitions)", received_total(handler), sent)
        check_count(f"{scenario} peer (all repetitions)", received_total(peer_handler), sent)
    ours = "NATS JetStream (file)" if kind == "jetstream" else "our broker process, ipc"
    rate, peer_rate = messages / best, messages / peer_best
    total = repetitions * messages
    return [
        Result(
            scenario=scenario,
            path=f"publisher -> {ours} -> handler, acked; vs FastStream over {kind}",
            messages=messages,
            seconds=best,
            msgs_per_s=rate,
            ceiling_msgs_per_s=peer_rate,
            ratio=rate / peer_rate,
            ceiling=f"{_peer_name()}: publisher -> {DESCRIPTIONS[kind]} -> handler, same message and processes",
            cpu_us=_cpu(cpu, total),
            ceiling_cpu_us=_cpu(peer_cpu, total),
            server_cpu_us=_cpu(server_cpu, total),
            ceiling_server_cpu_us=_cpu(peer_server_cpu, total),
        )
    ]


# Request/reply ------------------------------------------------------------------------------------------


def _requests(
    client: Worker, count: int, depth: int, meters: tuple[CpuMeter, CpuMeter]
) -> tuple[float, float, float]:
    """Have ``client`` make ``count`` requests, ``depth`` in flight: seconds, p50 and p99 in microseconds."""
    timeout = peer_timeout(count)
    client.ask(f"prepare {count}", "prepared", timeout)
    with meters[0], meters[1]:
        answer = client.ask(f"request {count} {depth} {timeout}", "done", timeout + 5)
    seconds, p50, p99 = map(float, answer.split())
    return seconds, p50, p99


def run_request_reply(kind: str, quick: bool) -> list[Result]:
    """Request/reply, 1 and 100 in flight: our BrokerClient next to FastStream's ``broker.request``."""
    scenario = f"peer-{kind}-request-reply"
    reason = skip_reason(kind)
    if reason is not None:
        print(f"{scenario}: skipped, {reason}", file=sys.stderr)
        return []
    repetitions = 1 if quick else 3
    warmup = 100 if quick else 200
    plans = [(1, 200 if quick else 1_000), (100, 1_000 if quick else 2_000)]  # (in flight, requests)
    url = SERVERS[kind]
    measured = []
    with _our_endpoint(kind, scenario) as endpoint, _peer_destination(kind) as name, Workers() as workers:
        start = workers.start
        broker = start(start_broker(endpoint)) if kind != "jetstream" else None
        peer_handler = start(
            Worker("peer-handler", _peer_argv("peer-handler", kind, url, name, "commands"), ready="ready")
        )
        if broker is not None:
            broker.wait_ready(STARTUP)
        handler = start(Worker("handler", worker_argv("handler", endpoint), ready="ready"))
        handler.wait_ready(STARTUP)
        peer_handler.wait_ready(STARTUP)
        client = start(Worker("client", _peer_argv("client", endpoint), ready="ready"))
        peer_client = start(Worker("peer-client", _peer_argv("peer-client", kind, url, name), ready="ready"))
        client.wait_ready(STARTUP)
        peer_client.wait_ready(STARTUP)

        our_server = broker.process.pid if broker is not None else server_pid(kind)
        for depth, _ in plans:
            idle = CpuMeter([])
            _requests(peer_client, warmup, depth, (idle, idle))
            _requests(client, warmup, depth, (idle, idle))
        for depth, count in plans:
            meters = _meters([client, handler], our_server, [peer_client, peer_handler], server_pid(kind))
            best, peer_best = (float("inf"), 0.0, 0.0), (float("inf"), 0.0, 0.0)
            for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts both alike
                peer_best = min(peer_best, _requests(peer_client, count, depth, (meters[2], meters[3])))
                best = min(best, _requests(client, count, depth, (meters[0], meters[1])))
            measured.append((depth, count, best, peer_best, meters))
        sent = len(plans) * warmup + repetitions * sum(count for _, count in plans)
        check_count(f"{scenario}: requests handled (all repetitions)", received_total(handler), sent)
        check_count(
            f"{scenario} peer: requests handled (all repetitions)", received_total(peer_handler), sent
        )
    ours = "NATS JetStream (file)" if kind == "jetstream" else "our broker process, ipc"
    results = []
    for depth, count, (seconds, p50, p99), (peer_seconds, peer_p50, peer_p99), meters in measured:
        rate, peer_rate = count / seconds, count / peer_seconds
        total = repetitions * count
        results.append(
            Result(
                scenario=scenario,
                path=f"client -> {ours} -> handler -> client, {depth} in flight; vs FastStream over {kind}",
                messages=count,
                seconds=seconds,
                msgs_per_s=rate,
                ceiling_msgs_per_s=peer_rate,
                ratio=rate / peer_rate,
                ceiling=f"{_peer_name()}: broker.request -> {DESCRIPTIONS[kind]} -> handler returning the body",
                p50_us=p50,
                p99_us=p99,
                ceiling_p50_us=peer_p50,
                ceiling_p99_us=peer_p99,
                cpu_us=_cpu(meters[0], total),
                server_cpu_us=_cpu(meters[1], total),
                ceiling_cpu_us=_cpu(meters[2], total),
                ceiling_server_cpu_us=_cpu(meters[3], total),
            )
        )
    return results
