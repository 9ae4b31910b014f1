"""The ``broker-events`` scenario: events across three processes over ``ipc://``, acknowledged.

Path: a publisher process (BrokerPublisher, ``SENDERS`` coroutines each awaiting the broker's
acceptance) -> the broker process (``python -m minos.networks broker``) -> a handler process (a
BrokerPort whose dispatcher runs BenchService's counting event handler and acknowledges each message
once handled). Timed from the publisher's first send to the handler counting the last message (both
stamped with CLOCK_MONOTONIC, which all processes share). The handler process counts; a repetition in
which it does not get exactly what was sent fails the scenario.

Ceiling, measured in the same run: raw pyzmq + msgpack with the same three processes and hops: PUSH
(packing dicts of the same wire size) -> a relay process (PULL -> PUSH, a recv and a send per message,
in Python) -> PULL (unpacking), over ``ipc://``; no acceptances, no acknowledgements.

Throughput only: with the publisher saturating the path, a message's latency is the time it queues,
not a property of the path (request-reply measures latency).

``nats-events`` runs the same publisher and handler processes on ``transport: nats``: the NATS
JetStream server (file storage, a stream of the run's own, deleted afterwards) takes the broker's place,
a send returns on JetStream's PubAck, and the handler acknowledges each message once handled. Its
ceiling is the same raw three-process pyzmq path, measured in the same run. It is skipped, with the
reason on stderr, when no NATS server answers at ``NATS_URL``.

The pyzmq ceiling says what a message could cost without a server; two more ceilings, measured in
the same run against the same NATS server, say what the server itself allows, so that the ratios
tell our cost from the server's (``workers.raw_nats_pull`` and ``raw_nats_push``, plain nats-py):

- ``nats-events:jetstream``: what our NATS path does, written directly: a stream of the run's own
  (file, interest retention, a duplicate window), ``SENDERS`` coroutines each awaiting the PubAck of
  its publish (with a ``Nats-Msg-Id``), a durable pull consumer fetching up to 1,000 at a time, each
  message unpacked, then acknowledged.
- ``nats-events:core``: core NATS, publish and subscribe, nothing awaited, nothing acknowledged.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from benchmarks import Result
from benchmarks.e2e import (
    NATS_URL,
    Worker,
    Workers,
    check_count,
    event_messages,
    ipc_directory,
    measure_events,
    over_nats,
    received_total,
    start_broker,
    wire_size,
    worker_argv,
)
from benchmarks.probes import CpuMeter, pids, server_pid

__all__ = ["SENDERS", "run", "run_nats"]

SCENARIO = "broker-events"
PATH = "publisher -> broker -> handler, 3 processes, ipc, acked"
SENDERS = 1000
"""Coroutines sending at once in the publisher, each awaiting the broker's acceptance before its next send."""
CEILING = (
    "raw pyzmq+msgpack, 3 processes: PUSH -> relay (PULL->PUSH, Python loop) -> PULL unpacking, ipc, "
    "same-size dicts; no acceptances, no acks"
)
STARTUP = 20.0  # seconds a worker may take to print its ready line
NATS_SCENARIO = "nats-events"
NATS_PATH = "publisher -> NATS JetStream (file) -> handler, 3 processes, tcp, acked"
NATS_CEILINGS = {  # name -> (the raw nats-py workers' stream, or "-" for core NATS; the ceiling in words)
    "jetstream": (
        "stream",
        "raw nats-py, 2 processes + the same NATS server: publish awaiting each PubAck, "
        f"{SENDERS} in flight, Nats-Msg-Id -> JetStream (file, interest) -> durable pull consumer, "
        "fetch 1000, unpack, ack each",
    ),
    "core": ("-", "raw nats-py, 2 processes + the same NATS server: core NATS publish -> subscribe, no acks"),
}


def run(quick: bool) -> list[Result]:
    """Measure events through a broker process next to the raw three-process ceiling."""
    return _run(quick, SCENARIO, PATH, None)


def run_nats(quick: bool) -> list[Result]:
    """Measure events through NATS JetStream next to the raw three-process ceiling; [] without a server."""
    return over_nats(
        NATS_SCENARIO, lambda endpoint, stream: _run(quick, NATS_SCENARIO, NATS_PATH, endpoint, stream)
    )


def _run(
    quick: bool, scenario: str, path: str, nats_endpoint: str | None, raw_stream: str | None = None
) -> list[Result]:
    messages = 2_000 if quick else 50_000
    repetitions = 1 if quick else 3
    warmup = 200 if quick else 2_000
    size = wire_size(event_messages(1)[0])
    with ipc_directory() as directory, Workers() as workers:
        endpoint = nats_endpoint or f"ipc://{directory}/broker"
        raw_in, raw_out = f"ipc://{directory}/raw-in", f"ipc://{directory}/raw-out"
        start = workers.start

        # The binding sides first, so that nobody connects to a socket file that is not there yet.
        broker = start(start_broker(endpoint)) if nats_endpoint is None else None
        relay = start(
            Worker("raw-relay", worker_argv("raw-relay", raw_in, raw_out), ready="ready", stdin=False)
        )
        if broker is not None:
            broker.wait_ready(STARTUP)
        relay.wait_ready(STARTUP)
        handler = start(Worker("handler", worker_argv("handler", endpoint), ready="ready"))
        pull = start(Worker("raw-pull", worker_argv("raw-pull", raw_out), ready="ready"))
        handler.wait_ready(STARTUP)  # subscribed: from now on the broker keeps the group's messages
        pull.wait_ready(STARTUP)
        publisher = start(Worker("publisher", worker_argv("publisher", endpoint, SENDERS), ready="ready"))
        push = start(Worker("raw-push", worker_argv("raw-push", raw_in, size), ready="ready"))
        publisher.wait_ready(STARTUP)
        push.wait_ready(STARTUP)
        raw_nats = _start_raw_nats(workers, raw_stream, size) if raw_stream is not None else {}

        measure_events(push, pull, warmup)
        for nats_push, nats_pull in raw_nats.values():
            measure_events(nats_push, nats_pull, warmup)
        measure_events(publisher, handler, warmup)
        ours = [publisher, handler] if broker is None else [publisher, broker, handler]
        cpu, ceiling_cpu = CpuMeter(pids(*ours)), CpuMeter(pids(push, relay, pull))
        nats_server = server_pid("nats-server", urlsplit(NATS_URL).port) if raw_nats else None
        # With NATS: our processes, then the server, for us and for each raw nats-py ceiling.
        server = [] if nats_server is None else [nats_server]
        ends, on_server = (CpuMeter(pids(publisher)), CpuMeter(pids(handler))), CpuMeter(server)
        raw_meters = {
            name: ((CpuMeter(pids(raw_push)), CpuMeter(pids(raw_pull))), CpuMeter(server))
            for name, (raw_push, raw_pull) in raw_nats.items()
        }
        raw_best = dict.fromkeys(raw_nats, float("inf"))
        best, ceiling_best = float("inf"), float("inf")
        for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts both alike
            ceiling_best = min(ceiling_best, measure_events(push, pull, messages, ceiling_cpu))
            for name, (nats_push, nats_pull) in raw_nats.items():
                meters = _Meters(*raw_meters[name][0], raw_meters[name][1])
                raw_best[name] = min(raw_best[name], measure_events(nats_push, nats_pull, messages, meters))
            best = min(best, measure_events(publisher, handler, messages, _Meters(cpu, *ends, on_server)))
        sent = warmup + repetitions * messages
        check_count(f"{scenario} (all repetitions)", received_total(handler), sent)
        check_count(f"{scenario} ceiling (all repetitions)", received_total(pull), sent)
        for name, (_, nats_pull) in raw_nats.items():
            check_count(f"{scenario} {name} ceiling (all repetitions)", received_total(nats_pull), sent)
    rate, ceiling_rate = messages / best, messages / ceiling_best
    total = repetitions * messages
    raw_results = [
        Result(
            scenario=f"{scenario}:{name}",
            path=path,
            messages=messages,
            seconds=best,
            msgs_per_s=rate,
            ceiling_msgs_per_s=messages / raw_best[name],
            ratio=rate / (messages / raw_best[name]),
            ceiling=NATS_CEILINGS[name][1],
            cpu_us=sum(_split(ends, total)),
            ceiling_cpu_us=sum(_split(raw_meters[name][0], total)),
            server_cpu_us=on_server.per_message_us(total) if server else None,
            ceiling_server_cpu_us=raw_meters[name][1].per_message_us(total) if server else None,
            cpu_split_us=_split(ends, total),
            ceiling_cpu_split_us=_split(raw_meters[name][0], total),
        )
        for name in raw_nats
    ]
    return [
        Result(
            scenario=scenario,
            path=path,
            messages=messages,
            seconds=best,
            msgs_per_s=rate,
            ceiling_msgs_per_s=ceiling_rate,
            ratio=rate / ceiling_rate,
            ceiling=CEILING,
            # With NATS the server's CPU is not ours to read: the path's figure would leave it out.
            cpu_us=cpu.per_message_us(repetitions * messages) if nats_endpoint is None else None,
            ceiling_cpu_us=ceiling_cpu.per_message_us(repetitions * messages),
        ),
        *raw_results,
    ]


def _split(meters: tuple[CpuMeter, ...], messages: int) -> tuple[float, ...]:
    """CPU per message of each process metered apart (publisher, handler), rounded to 0.1 us."""
    return tuple(round(meter.per_message_us(messages), 1) for meter in meters)


class _Meters:
    """Several ``CpuMeter``s as one context manager, for ``measure_events``."""

    def __init__(self, *meters: CpuMeter) -> None:
        self.meters = meters

    def __enter__(self) -> None:
        for meter in self.meters:
            meter.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        for meter in self.meters:
            meter.__exit__(*exc_info)


def _start_raw_nats(workers: Workers, stream: str, size: int) -> dict[str, tuple[Worker, Worker]]:
    """The raw nats-py ceilings' (push, pull) workers, ready; the JetStream one in ``stream``."""
    started = {}
    for name, (kind, _) in NATS_CEILINGS.items():
        subject, raw_stream = f"{stream}.{name}", stream if kind == "stream" else "-"
        pull_argv = worker_argv("raw-nats-pull", NATS_URL, subject, raw_stream)
        pull = workers.start(Worker(f"raw-nats-pull-{name}", pull_argv, ready="ready"))
        pull.wait_ready(STARTUP)  # subscribed (and the stream made) before anything is published
        push_argv = worker_argv("raw-nats-push", NATS_URL, subject, raw_stream, size, SENDERS)
        push = workers.start(Worker(f"raw-nats-push-{name}", push_argv, ready="ready"))
        push.wait_ready(STARTUP)
        started[name] = (push, pull)
    return started
