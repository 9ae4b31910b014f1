"""The ``backlog-memory`` scenario: a broker holding 1,000,000 events for a stopped consumer, and what it costs.

Steps, each waiting on a line (a worker's answer or the broker's ``--stats`` line), never on a sleep:

1. A broker process starts with ``--max-messages`` equal to the backlog, so the backlog fills it exactly.
2. A handler process of the service subscribes, which creates the group's queue, and stops: the group
   now has no live member, and the broker keeps what is published for it (see ``transports.routing``).
3. A publisher process streams the backlog (1,000,000 events; 50,000 with ``--quick``), each event made
   as a sender takes it, so that its memory is the library's, not a list of pre-built messages. Its
   ``sent`` line means the broker accepted every one.
4. The publisher streams ``OVERFLOW`` more: the broker is full and refuses them (its ``refused`` count
   moves), so they wait in the publisher, bounded by its ``max_in_flight``.
5. A handler process of the same service starts and drains the group's queue; the overflow follows.

Memory is read from ``/proc/PID/status`` (``benchmarks.probes``): the broker's ``VmRSS`` before the
backlog and while holding it, which gives bytes per queued message; each process's ``VmHWM`` (the
kernel's record of its peak) at the end.

Results, next to the raw three-process ceiling of ``broker-events`` measured in this run:

- ``backlog-memory``: the drain rate, from the first to the backlog's last message handled, with the
  memory figures;
- ``backlog-memory:publish``: the rate at which the publisher filled the backlog (no consumer running).
"""

from __future__ import annotations

from benchmarks import Result
from benchmarks.broker_events import CEILING, SENDERS
from benchmarks.e2e import (
    Worker,
    WorkerError,
    Workers,
    check_count,
    event_messages,
    ipc_directory,
    measure_events,
    received_total,
    start_broker,
    timeout_for,
    wire_size,
    worker_argv,
)
from benchmarks.probes import StatsFeed, read_memory

__all__ = ["run"]

SCENARIO = "backlog-memory"
PATH = "backlog of a stopped group in the broker, drained by one handler process, ipc, acked"
PUBLISH_PATH = "publisher -> broker, into the backlog of a stopped group (no consumer running), ipc"
STARTUP = 20.0
STATS_INTERVAL = "0.1"


def run(quick: bool) -> list[Result]:
    """Fill a broker with a backlog for a stopped group, measure the memory, drain it."""
    backlog = 50_000 if quick else 1_000_000
    overflow = 1_000 if quick else 10_000
    ceiling_messages = 20_000 if quick else 100_000
    repetitions = 1 if quick else 3
    timeout = timeout_for(backlog)
    size = wire_size(event_messages(1)[0])
    with ipc_directory() as directory, Workers() as workers:
        start = workers.start

        endpoint = f"ipc://{directory}/broker"
        raw_in, raw_out = f"ipc://{directory}/raw-in", f"ipc://{directory}/raw-out"
        options = ("--max-messages", str(backlog), "--stats", "--stats-interval", STATS_INTERVAL)
        broker = start(start_broker(endpoint, *options))
        relay = start(
            Worker("raw-relay", worker_argv("raw-relay", raw_in, raw_out), ready="ready", stdin=False)
        )
        broker.wait_ready(STARTUP)
        relay.wait_ready(STARTUP)
        feed = StatsFeed(broker)

        # The group exists once a member subscribed; then its only member goes away.
        member = start(Worker("handler-once", worker_argv("handler", endpoint), ready="ready"))
        member.wait_ready(STARTUP)
        feed.wait_for("peers", 1, STARTUP)
        member.close()
        feed.wait_for("peers", 0, STARTUP, at_most=True)

        broker_before = read_memory(broker.process.pid)
        publisher = start(Worker("publisher", worker_argv("publisher", endpoint, SENDERS), ready="ready"))
        publisher.wait_ready(STARTUP)
        publisher_before = read_memory(publisher.process.pid)
        publisher.send(f"stream {backlog}")
        published_from, published_to = map(float, publisher.expect("sent", timeout).split())
        feed.wait_for("held", backlog, STARTUP)
        broker_held = read_memory(broker.process.pid)

        publisher.send(f"stream {overflow}")  # the broker is full: these wait in the publisher
        feed.wait_for("refused", 1, STARTUP)

        consumer = start(Worker("drain", worker_argv("drain", endpoint, backlog, timeout), ready="ready"))
        consumer.wait_ready(STARTUP)
        answer = consumer.readline(timeout + 5)
        if not answer.startswith("done"):
            raise WorkerError(f"{consumer.name} answered {answer!r} draining a backlog of {backlog}")
        # "done" comes when the backlog's last message was handled (more may follow at once: the overflow).
        first, last = answer.split()[2:]
        publisher.expect("sent", timeout)  # the overflow got in once the drain made room
        feed.wait_for("acked", backlog + overflow, timeout)
        check_count(f"{SCENARIO}: backlog and overflow", received_total(consumer), backlog + overflow)
        broker_after = read_memory(broker.process.pid)
        publisher_after = read_memory(publisher.process.pid)

        pull = start(Worker("raw-pull", worker_argv("raw-pull", raw_out), ready="ready"))
        push = start(Worker("raw-push", worker_argv("raw-push", raw_in, size), ready="ready"))
        pull.wait_ready(STARTUP)
        push.wait_ready(STARTUP)
        measure_events(push, pull, min(ceiling_messages, 2_000))
        ceiling_best = min(measure_events(push, pull, ceiling_messages) for _ in range(repetitions))
    drain_seconds = float(last) - float(first)
    publish_seconds = published_to - published_from
    ceiling_rate = ceiling_messages / ceiling_best
    drain_rate, publish_rate = backlog / drain_seconds, backlog / publish_seconds
    return [
        Result(
            scenario=SCENARIO,
            path=PATH,
            messages=backlog,
            seconds=drain_seconds,
            msgs_per_s=drain_rate,
            ceiling_msgs_per_s=ceiling_rate,
            ratio=drain_rate / ceiling_rate,
            ceiling=CEILING,
            broker_rss_before_mib=broker_before.rss_mib,
            broker_rss_mib=broker_held.rss_mib,
            broker_peak_rss_mib=broker_after.peak_mib,
            broker_bytes_per_message=(broker_held.rss - broker_before.rss) / backlog,
            publisher_rss_before_mib=publisher_before.rss_mib,
            publisher_peak_rss_mib=publisher_after.peak_mib,
        ),
        Result(
            scenario=f"{SCENARIO}:publish",
            path=PUBLISH_PATH,
            messages=backlog,
            seconds=publish_seconds,
            msgs_per_s=publish_rate,
            ceiling_msgs_per_s=ceiling_rate,
            ratio=publish_rate / ceiling_rate,
            ceiling=CEILING,
        ),
    ]
