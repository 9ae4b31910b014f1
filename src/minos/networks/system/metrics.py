"""ServiceCollector: a running service's counters as Prometheus metrics, read only when someone scrapes.

Nothing on the message path touches prometheus objects: dispatchers bump plain ints (``brokers.dispatch_stats``), the
broker keeps its own counters (``BrokerStats``), mailboxes and queues are measured by their length. At
scrape time this collector reads them all and builds the metric families, so a scrape costs a few
microseconds per topic and a message costs a few int additions.

Each service registers its collector in a registry of its own (the HTTP connector's, with
``interfaces.http.metrics: true``), never in prometheus_client's global one, so several services in one
process (or tests) never collide.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..actors import ActorService
from ..brokers import BrokerPort
from ..brokers.dispatch_stats import DURATION_BUCKETS, total

__all__ = ["MESSAGE_COUNTERS", "ServiceCollector"]

MESSAGE_COUNTERS: Final = (
    ("received", "Messages taken for handling by this service's dispatchers (duplicates excluded)."),
    ("redelivered", "Messages received that the broker had delivered before (a lost peer, a stop)."),
    (
        "handled",
        "Messages done with an answer: success, a 4xx, or a last failure without a dead-letter topic.",
    ),
    ("failed", "Handler runs that failed (status 500); each attempt counts."),
    ("retried", "Retries scheduled after a failed handler run."),
    ("dead_lettered", "Messages sent to the dead-letter topic after their last failed attempt."),
)
"""``minos_messages_<name>_total{topic}``: the per-topic counters, with their help texts."""


class ServiceCollector(Collector):
    """Reads a service's ports at scrape time and yields its metrics (names in the README's table).

    Args:
        broker: The broker port: per-topic message counters, handler durations, dispatcher backlogs,
            queued publishes and acknowledgements and, when it embeds a broker, the broker's counters.
        services: More actor services whose mailboxes to report (the HTTP and periodic ports' actors).
    """

    def __init__(self, *, broker: BrokerPort | None = None, services: Iterable[ActorService] = ()) -> None:
        self.broker = broker
        self.services = tuple(services)

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the registry then learns no names, and collect() runs only at scrape time."""
        return ()

    def collect(self) -> Iterable[Metric]:
        yield from self._messages()
        yield from self._depths()
        yield from self._broker()

    def _messages(self) -> Iterator[Metric]:
        if self.broker is None:
            return

        topics = total(self.broker.stats.values())
        for name, documentation in MESSAGE_COUNTERS:
            family = CounterMetricFamily(f"minos_messages_{name}", documentation, labels=["topic"])
            for topic, counts in sorted(topics.items()):
                family.add_metric([topic], getattr(counts, name))
            yield family
        histogram = HistogramMetricFamily(
            "minos_handler_duration_seconds",
            "Seconds a broker handler ran, per run (retries are runs of their own).",
            labels=["topic"],
        )
        for topic, counts in sorted(topics.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            histogram.add_metric([topic], buckets, counts.duration_sum)
        yield histogram

    def _depths(self) -> Iterator[Metric]:
        mailboxes = GaugeMetricFamily(
            "minos_actor_mailbox_messages",
            "Messages waiting in an actor's mailbox (control messages: start, stop, supervision).",
            labels=["actor"],
        )
        services = [*([self.broker.service] if self.broker is not None else []), *self.services]
        for service in services:
            for actor, depth in service.mailboxes().items():
                mailboxes.add_metric([actor], depth)
        yield mailboxes
        if self.broker is None:
            return
        backlog = GaugeMetricFamily(
            "minos_dispatcher_backlog",
            "A dispatcher's messages by state: waiting for a concurrency slot, running (suspended in their "
            "handler), or waiting for a retry.",
            labels=["dispatcher", "state"],
        )
        for dispatcher, sink in sorted(self.broker.sinks.items()):
            for state, count in zip(("waiting", "running", "retrying"), sink.backlog, strict=True):
                backlog.add_metric([dispatcher, state], count)
        yield backlog
        queued = GaugeMetricFamily(
            "minos_peer_queued",
            "Publishes (replies, dead letters) and acknowledgements a dispatcher has queued for its "
            "connection and not handed to it yet.",
            labels=["peer", "kind"],
        )
        for handle in self.broker.handles:
            publishes, acks = handle.queued
            queued.add_metric([handle.name, "publish"], publishes)
            queued.add_metric([handle.name, "ack"], acks)
        yield queued

    def _broker(self) -> Iterator[Metric]:
        server = self.broker.server if self.broker is not None else None
        if server is None:
            return
        stats = server.stats
        for name, value, documentation in (
            ("published", stats.published, "Messages the embedded broker accepted."),
            ("refused", stats.refused, "Publishes refused because the broker held max_messages."),
            ("delivered", stats.delivered, "Deliveries sent to subscribers, redeliveries included."),
            ("acknowledged", stats.acknowledged, "Deliveries acknowledged by their subscriber."),
            (
                "redelivered",
                stats.redelivered,
                "Messages given back to their queue by a lost or stopped peer.",
            ),
            ("discarded", stats.discarded, "Messages dropped with a transient queue whose last member left."),
            ("lost_peers", stats.lost_peers, "Peers declared lost: silent, unreachable, or cut off."),
            ("cut_off_peers", stats.cut_off_peers, "Peers cut off for sending too many malformed frames."),
            ("refused_handshakes", stats.refused_handshakes, "CURVE handshakes refused."),
        ):
            family = CounterMetricFamily(f"minos_broker_{name}", documentation)
            family.add_metric([], value)
            yield family
        rejected = CounterMetricFamily(
            "minos_broker_rejected_frames",
            "Frames the broker ignored: malformed (breaking the wire protocol) or from an unknown peer.",
            labels=["reason"],
        )
        rejected.add_metric(["malformed"], stats.malformed)
        rejected.add_metric(["unknown_peer"], stats.ignored)
        yield rejected
        for name, value, documentation in (
            ("messages", stats.size, "Messages the broker holds now: queued or in flight."),
            ("peers", stats.peers, "Peers connected to the broker now."),
        ):
            gauge = GaugeMetricFamily(f"minos_broker_{name}", documentation)
            gauge.add_metric([], value)
            yield gauge
        depths = GaugeMetricFamily(
            "minos_broker_queue_messages",
            "Messages waiting in the broker's queue of a group for a topic (not those in flight).",
            labels=["topic", "group"],
        )
        for topic, group, queued in sorted(server.queue_depths()):
            depths.add_metric([topic, group], queued)
        yield depths
