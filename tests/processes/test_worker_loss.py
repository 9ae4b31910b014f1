"""At-least-once delivery across processes: a worker killed (SIGKILL) or stopped (SIGTERM) mid-stream loses nothing."""

import asyncio
import signal
from collections import Counter, defaultdict
from dataclasses import dataclass

from minos.networks import BrokerMessageV1, BrokerMessageV1Payload, BrokerPublisher

COUNT = 3000  # messages sent to group A
KILL_AFTER = 300  # the victim is killed once it has handled this many (of about COUNT / 2 it gets)
HANDLER_DELAY = 0.001  # seconds of simulated work per message, so the stream lasts long enough to cut
WAIT = 30.0  # seconds any single wait may take before the test fails


@dataclass
class DeliveryReport:
    """What the workers handled compared with what the broker accepted."""

    sent: int
    handled_per_worker: dict[str, int]
    distinct_handled: int
    lost: list[str]
    """Accepted by the broker, handled by nobody."""
    unexpected: list[str]
    """Handled, but never accepted from the publisher, or handled by a worker not in the target group."""
    redelivered_after_kill: list[str]
    """Handled by the killed worker (which died before acknowledging them) and once more by its group peer."""
    duplicated: list[str]
    """Handled more than once for any other reason: at-least-once allows it, but nothing here should cause it."""


def check_delivery(
    sent: set[str], handled: list[tuple[str, str]], group: set[str], killed: str
) -> DeliveryReport:
    """Compare the identifiers the publisher got acceptance for with the (worker, identifier) handled."""
    workers_of: dict[str, list[str]] = defaultdict(list)
    for worker, identifier in handled:
        workers_of[identifier].append(worker)
    redelivered, duplicated = [], []
    for identifier, workers in workers_of.items():
        if len(workers) == 1:
            continue
        count = Counter(workers)
        if len(workers) == 2 and count[killed] == 1:
            redelivered.append(identifier)
        else:
            duplicated.append(identifier)
    return DeliveryReport(
        sent=len(sent),
        handled_per_worker=dict(Counter(worker for worker, _ in handled)),
        distinct_handled=len(workers_of),
        lost=sorted(sent - set(workers_of)),
        unexpected=sorted(
            identifier
            for identifier, workers in workers_of.items()
            if identifier not in sent or not set(workers) <= group
        ),
        redelivered_after_kill=sorted(redelivered),
        duplicated=sorted(duplicated),
    )


def test_the_delivery_checker_tells_lost_unexpected_redelivered_and_duplicated_messages_apart():
    handled = [
        ("a1", "once"),
        ("a1", "cut"),
        ("a2", "cut"),  # a1 died before acknowledging it
        ("a2", "twice"),
        ("a2", "twice"),
        ("b1", "elsewhere"),
        ("a2", "unknown"),
    ]
    report = check_delivery({"once", "cut", "twice", "elsewhere", "lost"}, handled, {"a1", "a2"}, killed="a1")
    assert report.lost == ["lost"]
    assert report.unexpected == ["elsewhere", "unknown"]
    assert report.redelivered_after_kill == ["cut"]
    assert report.duplicated == ["twice"]
    assert report.distinct_handled == 5
    assert report.handled_per_worker == {"a1": 2, "a2": 4, "b1": 1}


async def stream_and_cut(cluster, cut) -> tuple[DeliveryReport, dict[str, int]]:
    """Send COUNT messages to group A; ``cut(a1)`` once a1 has handled KILL_AFTER; wait until all are handled.

    Returns the delivery report (a1 counts as the killed worker) and the broker's counters, both final:
    the live workers and the broker are stopped before the records are compared.
    """
    victim = cluster.workers["a1"]
    topic = cluster.a_work_topic
    output = cluster.output
    sent: set[str] = set()

    async with BrokerPublisher.from_config(cluster.config) as publisher:

        async def send(index: int) -> None:
            message = BrokerMessageV1(topic, BrokerMessageV1Payload(index))
            await publisher.send(message)
            sent.add(str(message.identifier))  # the broker accepted it: it must be handled

        sending = asyncio.gather(*(send(index) for index in range(COUNT)))
        try:
            await output.wait(
                lambda: output.count(victim.name, topic) >= KILL_AFTER, WAIT, f"a1 to handle {KILL_AFTER}"
            )
            cut(victim)
            await asyncio.wait_for(sending, WAIT)
        finally:
            sending.cancel()
    assert len(sent) == COUNT

    await output.wait(
        lambda: output.all_handled(sent, topic),
        WAIT,
        f"every one of the {COUNT} accepted messages to be handled by some worker",
    )
    cluster.stop_workers()  # the live workers end cleanly; from here on the records are final
    broker_stats = cluster.broker.stop()
    report = check_delivery(
        sent,
        [(record.worker, record.identifier) for record in output.snapshot(topic)],
        group={"a1", "a2"},
        killed=victim.name,
    )
    print(
        f"\n{cut.__name__} over {cluster.broker.endpoint.split(':')[0]}: sent {report.sent}, handled "
        f"{report.handled_per_worker}, distinct {report.distinct_handled}, redelivered after the cut "
        f"{len(report.redelivered_after_kill)}, lost {len(report.lost)}, unexpected {len(report.unexpected)}, "
        f"duplicated {len(report.duplicated)}; broker {broker_stats}"
    )
    return report, broker_stats


def sigkill(worker) -> None:
    worker.kill()


def sigterm(worker) -> None:
    worker.terminate()


async def test_killing_a_worker_mid_stream_loses_nothing_and_its_group_peer_handles_the_rest(start_cluster):
    cluster = start_cluster(delay=HANDLER_DELAY)
    report, broker_stats = await stream_and_cut(cluster, sigkill)

    assert cluster.workers["a1"].popen.returncode == -signal.SIGKILL
    assert report.lost == []
    assert report.unexpected == []
    assert report.duplicated == []
    assert report.distinct_handled == COUNT
    killed_count = report.handled_per_worker.get("a1", 0)
    survivor_count = report.handled_per_worker.get("a2", 0)
    assert 0 < killed_count < COUNT, "the kill did not happen mid-stream"
    assert survivor_count == COUNT - killed_count + len(report.redelivered_after_kill)
    # What a1 held unacknowledged when it died went back to its group: the broker redelivered it.
    assert broker_stats["redelivered"] > 0, broker_stats
    assert broker_stats["held"] == 0, broker_stats


async def test_a_worker_stopped_with_sigterm_mid_stream_hands_back_what_it_did_not_handle_and_nothing_twice(
    start_cluster,
):
    cluster = start_cluster(delay=HANDLER_DELAY)
    report, broker_stats = await stream_and_cut(cluster, sigterm)

    stopped = cluster.workers["a1"]
    assert stopped.popen.returncode == 0, stopped.diagnostics()
    assert stopped.lines[-1] == "stopped\ta1"
    assert report.lost == []
    assert report.unexpected == []
    # A graceful stop acknowledges what it handled before it disconnects: nothing is handled twice.
    assert report.redelivered_after_kill == []
    assert report.duplicated == []
    stopped_count = report.handled_per_worker.get("a1", 0)
    assert 0 < stopped_count < COUNT
    assert report.handled_per_worker.get("a2", 0) == COUNT - stopped_count
    assert broker_stats["redelivered"] > 0, broker_stats  # what a1 held but had not started went back
    assert broker_stats["held"] == 0, broker_stats
