"""The ``durable-events`` scenario: ``broker-events`` with a SQLite outbox and inbox, next to the same path without.

Path: a durable publisher process (BrokerPublisher with ``interfaces.broker.durable``: ``send`` returns
once the message is committed to its SQLite outbox, group-committed with WAL and ``synchronous=FULL``)
-> a broker process -> a durable handler process (its BrokerPort marks each handled message in a SQLite
inbox before acknowledging it, and sends the receipt that deletes the outbox row). Timed from the
publisher's first send to the handler counting the last message, as ``broker-events``.

Two ratios, both measured in this run, repetitions interleaved:

- ``durable-events``: to the raw pyzmq + msgpack three-process ceiling of ``broker-events``;
- ``durable-events:broker-events``: to the same three processes without durability (a second broker,
  publisher and handler), which is what durability costs.
"""

from __future__ import annotations

from benchmarks import Result
from benchmarks.broker_events import CEILING, SENDERS
from benchmarks.e2e import (
    Worker,
    Workers,
    check_count,
    event_messages,
    ipc_directory,
    measure_events,
    received_total,
    start_broker,
    wire_size,
    worker_argv,
)
from benchmarks.probes import CpuMeter, pids

__all__ = ["run"]

SCENARIO = "durable-events"
PATH = "durable publisher -> broker -> durable handler, 3 processes, ipc, SQLite outbox + inbox"
STARTUP = 20.0


def run(quick: bool) -> list[Result]:
    """Measure durable events next to plain events and the raw ceiling."""
    messages = 2_000 if quick else 30_000
    repetitions = 1 if quick else 3
    warmup = 200 if quick else 2_000
    size = wire_size(event_messages(1)[0])
    with ipc_directory() as directory, Workers() as workers:
        start = workers.start

        durable_endpoint, plain_endpoint = f"ipc://{directory}/durable", f"ipc://{directory}/plain"
        raw_in, raw_out = f"ipc://{directory}/raw-in", f"ipc://{directory}/raw-out"
        brokers = [start(start_broker(durable_endpoint)), start(start_broker(plain_endpoint))]
        relay = start(
            Worker("raw-relay", worker_argv("raw-relay", raw_in, raw_out), ready="ready", stdin=False)
        )
        for worker in (*brokers, relay):
            worker.wait_ready(STARTUP)
        handler = start(
            Worker(
                "durable-handler",
                worker_argv("handler", durable_endpoint, directory / "inbox.sqlite"),
                ready="ready",
            )
        )
        plain_handler = start(Worker("handler", worker_argv("handler", plain_endpoint), ready="ready"))
        pull = start(Worker("raw-pull", worker_argv("raw-pull", raw_out), ready="ready"))
        for worker in (handler, plain_handler, pull):
            worker.wait_ready(STARTUP)
        publisher = start(
            Worker(
                "durable-publisher",
                worker_argv("publisher", durable_endpoint, SENDERS, directory / "outbox.sqlite"),
                ready="ready",
            )
        )
        plain_publisher = start(
            Worker("publisher", worker_argv("publisher", plain_endpoint, SENDERS), ready="ready")
        )
        push = start(Worker("raw-push", worker_argv("raw-push", raw_in, size), ready="ready"))
        for worker in (publisher, plain_publisher, push):
            worker.wait_ready(STARTUP)

        measure_events(push, pull, warmup)
        measure_events(plain_publisher, plain_handler, warmup)
        measure_events(publisher, handler, warmup)
        cpu = CpuMeter(pids(publisher, brokers[0], handler))
        plain_cpu = CpuMeter(pids(plain_publisher, brokers[1], plain_handler))
        ceiling_cpu = CpuMeter(pids(push, relay, pull))
        best = plain_best = ceiling_best = float("inf")
        for _ in range(repetitions):
            ceiling_best = min(ceiling_best, measure_events(push, pull, messages, ceiling_cpu))
            plain_best = min(plain_best, measure_events(plain_publisher, plain_handler, messages, plain_cpu))
            best = min(best, measure_events(publisher, handler, messages, cpu))
        sent = warmup + repetitions * messages
        check_count(f"{SCENARIO} (all repetitions)", received_total(handler), sent)
        check_count(f"{SCENARIO} plain (all repetitions)", received_total(plain_handler), sent)
        check_count(f"{SCENARIO} ceiling (all repetitions)", received_total(pull), sent)
    rate, plain_rate, ceiling_rate = messages / best, messages / plain_best, messages / ceiling_best
    total = repetitions * messages
    return [
        Result(
            scenario=SCENARIO,
            path=PATH,
            messages=messages,
            seconds=best,
            msgs_per_s=rate,
            ceiling_msgs_per_s=ceiling_rate,
            ratio=rate / ceiling_rate,
            ceiling=CEILING,
            cpu_us=cpu.per_message_us(total),
            ceiling_cpu_us=ceiling_cpu.per_message_us(total),
        ),
        Result(
            scenario=f"{SCENARIO}:broker-events",
            path=PATH,
            messages=messages,
            seconds=best,
            msgs_per_s=rate,
            ceiling_msgs_per_s=plain_rate,
            ratio=rate / plain_rate,
            ceiling="broker-events (the same three processes without durability), measured in this run",
            cpu_us=cpu.per_message_us(total),
            ceiling_cpu_us=plain_cpu.per_message_us(total),
        ),
    ]
