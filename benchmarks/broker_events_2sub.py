"""The ``broker-events-2sub`` scenario: ``broker-events`` with two handler processes sharing one group's load.

Path: a publisher process (as in ``broker-events``) -> the broker process -> two handler processes of
the same service, so members of one group: the broker hands each message to one of them, round robin
among those with credit. Timed from the publisher's first send to the last message handled by either
handler. Each handler counts what it handled and stamps its last one; the sum must be exactly what was
sent, and each must have handled some (otherwise nothing was shared).

How the end is seen: nobody knows in advance how the broker will split the messages, so no handler can
be told "answer at N". The broker runs with ``--stats`` and the scenario reads its lines until its
``acked`` count covers every message sent (a handler acknowledges a message only once it handled it),
then asks each handler for its count and the time of its last message. The stats interval only delays
seeing the end; the time measured comes from the handlers' own stamps.

Two ratios, measured in this run, repetitions interleaved:

- ``broker-events-2sub``: to the raw pyzmq + msgpack three-process ceiling of ``broker-events``;
- ``broker-events-2sub:1sub``: to the same path with one handler (a second broker, publisher and
  handler), which is the speed-up a second subscriber process gives. On a machine with two cores and
  four busy processes, expect none: the publisher and the broker are already the bottleneck.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from benchmarks.probes import StatsFeed

__all__ = ["SharedGroup", "run"]

SCENARIO = "broker-events-2sub"
PATH = "publisher -> broker -> 2 handlers in one group, 4 processes, ipc, acked"
SUBSCRIBERS = 2
STATS_INTERVAL = "0.02"  # seconds between the broker's stats lines: how late the end is seen, at most
STARTUP = 20.0


class SharedGroup:
    """A publisher sending to several handlers of one group through a broker printing ``--stats``.

    Args:
        publisher: The publisher worker.
        handlers: The handler workers, all of the same service.
        feed: The broker's stats.
    """

    def __init__(self, publisher: Worker, handlers: Sequence[Worker], feed: StatsFeed) -> None:
        self.publisher = publisher
        self.handlers = list(handlers)
        self.feed = feed
        self.sent = 0  # messages sent so far through this broker: what its acked count must reach

    def measure(self, messages: int) -> tuple[float, list[int]]:
        """Send ``messages``; seconds from the first send to the last handled, and each handler's count.

        Raises:
            WorkerError: The counts do not add up to ``messages``, or a handler handled none.
        """
        timeout = timeout_for(messages)
        for handler in self.handlers:
            handler.ask("watch", "armed", timeout)
        self.publisher.send(f"send {messages}")
        start, _ = map(float, self.publisher.expect("sent", timeout + 5).split())
        self.sent += messages
        self.feed.wait_for("acked", self.sent, timeout + 5)
        counts, last = [], 0.0
        for handler in self.handlers:
            handled, _first, last_at = handler.ask("count", "count", 10).split()
            counts.append(int(handled))
            last = max(last, float(last_at))
        where = f"{self.publisher.name} -> {' + '.join(handler.name for handler in self.handlers)}"
        check_count(where, sum(counts), messages)
        if min(counts) == 0:
            raise WorkerError(
                f"{where}: the handlers handled {counts} of {messages}: one got nothing, so the group did not "
                "share the load"
            )
        return last - start, counts


def run(quick: bool) -> list[Result]:
    """Measure two handlers sharing a group next to one handler alone and the raw ceiling."""
    messages = 2_000 if quick else 50_000
    repetitions = 1 if quick else 3
    warmup = 200 if quick else 2_000
    size = wire_size(event_messages(1)[0])
    with ipc_directory() as directory, Workers() as workers:
        start = workers.start

        shared_endpoint, solo_endpoint = f"ipc://{directory}/shared", f"ipc://{directory}/solo"
        raw_in, raw_out = f"ipc://{directory}/raw-in", f"ipc://{directory}/raw-out"
        # Both brokers print stats, so that the one-handler yardstick pays what the measured path pays.
        stats = ("--stats", "--stats-interval", STATS_INTERVAL)
        shared_broker = start(start_broker(shared_endpoint, *stats, name="broker-2sub"))
        solo_broker = start(start_broker(solo_endpoint, *stats, name="broker-1sub"))
        relay = start(
            Worker("raw-relay", worker_argv("raw-relay", raw_in, raw_out), ready="ready", stdin=False)
        )
        for worker in (shared_broker, solo_broker, relay):
            worker.wait_ready(STARTUP)
        feed = StatsFeed(shared_broker)
        StatsFeed(solo_broker)  # read only so that its pipe never fills
        handlers = [
            start(Worker(f"handler-{i}", worker_argv("handler", shared_endpoint), ready="ready"))
            for i in range(1, SUBSCRIBERS + 1)
        ]
        solo = start(Worker("handler-1sub", worker_argv("handler", solo_endpoint), ready="ready"))
        pull = start(Worker("raw-pull", worker_argv("raw-pull", raw_out), ready="ready"))
        for worker in (*handlers, solo, pull):
            worker.wait_ready(STARTUP)
        group = SharedGroup(
            start(
                Worker("publisher-2sub", worker_argv("publisher", shared_endpoint, SENDERS), ready="ready")
            ),
            handlers,
            feed,
        )
        solo_publisher = start(
            Worker("publisher-1sub", worker_argv("publisher", solo_endpoint, SENDERS), ready="ready")
        )
        push = start(Worker("raw-push", worker_argv("raw-push", raw_in, size), ready="ready"))
        for worker in (group.publisher, solo_publisher, push):
            worker.wait_ready(STARTUP)

        measure_events(push, pull, warmup)
        measure_events(solo_publisher, solo, warmup)
        group.measure(warmup)
        best = solo_best = ceiling_best = float("inf")
        split: list[int] = []
        for _ in range(repetitions):  # interleaved, so that a noisy neighbour hurts all three alike
            ceiling_best = min(ceiling_best, measure_events(push, pull, messages))
            solo_best = min(solo_best, measure_events(solo_publisher, solo, messages))
            seconds, counts = group.measure(messages)
            if seconds < best:
                best, split = seconds, counts
        sent = warmup + repetitions * messages
        check_count(f"{SCENARIO} (all repetitions)", sum(received_total(h) for h in handlers), sent)
        check_count(f"{SCENARIO} one handler (all repetitions)", received_total(solo), sent)
        check_count(f"{SCENARIO} ceiling (all repetitions)", received_total(pull), sent)
    rate, solo_rate, ceiling_rate = messages / best, messages / solo_best, messages / ceiling_best
    return [
        Result(
            scenario=name,
            path=PATH,
            messages=messages,
            seconds=best,
            msgs_per_s=rate,
            ceiling_msgs_per_s=yardstick,
            ratio=rate / yardstick,
            ceiling=ceiling,
            per_subscriber=tuple(split),
        )
        for name, yardstick, ceiling in (
            (SCENARIO, ceiling_rate, CEILING),
            (
                f"{SCENARIO}:1sub",
                solo_rate,
                "broker-events with one handler (its own broker and publisher), measured in this run",
            ),
        )
    ]
