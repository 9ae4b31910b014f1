"""The benchmark runner's parts: the result of a scenario, the timing helpers and the scenario registry.

Each scenario measures a real path of minos.networks and, in the same run on the same machine, the
ceiling that path could reach (plain msgpack, raw pyzmq ...), and reports the path as a ratio of it:
absolute numbers on a shared machine are noise, ratios measured side by side are not.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SCENARIOS", "Result", "Scenario", "best_rate"]


@dataclass(frozen=True, slots=True)
class Result:
    """One measured path of a scenario, next to its ceiling.

    Args:
        scenario: The scenario's name, as given on the command line.
        path: What was measured inside the scenario, e.g. ``encode+decode``.
        messages: How many messages one timed repetition handled.
        seconds: The time of the best repetition.
        msgs_per_s: Messages per second of the best repetition.
        ceiling_msgs_per_s: The same for the ceiling, measured in the same run.
        ratio: ``msgs_per_s / ceiling_msgs_per_s``; 1.0 means the path costs nothing over its ceiling.
        ceiling: What the ceiling is, in words.
        p50_us: The median latency of one message, in microseconds, where the scenario measures it.
        p99_us: The 99th percentile latency, in microseconds, where the scenario measures it.
        per_subscriber: What each subscriber process of a group handled in the best repetition, where
            several share the load (``broker-events-2sub``).
        broker_rss_before_mib: The broker process's resident memory (VmRSS) before the backlog, in MiB.
        broker_rss_mib: Its resident memory while it holds the whole backlog.
        broker_peak_rss_mib: Its peak resident memory (VmHWM) over the whole scenario.
        broker_bytes_per_message: ``(broker_rss - broker_rss_before) / backlog``, in bytes.
        publisher_rss_before_mib: The publisher process's resident memory once connected, before sending.
        publisher_peak_rss_mib: Its peak resident memory (VmHWM) over the whole scenario, while the
            broker was full included.
        cpu_us: CPU time (user + system) per message of every process of the path, in microseconds,
            over all timed repetitions: steadier than rates on a shared machine, where a process waiting
            for a core spends no CPU.
        ceiling_cpu_us: The same for the ceiling's processes.
        ceiling_p50_us: The ceiling's median latency, where it is measured like the path (``peer-*``,
            ``request-reply``, ``nats-request-reply``).
        ceiling_p99_us: The ceiling's 99th percentile latency, likewise.
        server_cpu_us: CPU per message of the broker or server process between the path's processes (our
            broker process, or the NATS server): left out of ``cpu_us`` in ``peer-*`` and ``nats-*`` rows,
            included in it (and given apart here) in ``request-reply``.
        ceiling_server_cpu_us: The same for the ceiling's or the peer's server (the raw relay, NATS,
            RabbitMQ, Redis), where readable.
        cpu_split_us: CPU per message of the two ends, where a scenario reads them apart: the client (or
            publisher) and the handler, in that order (``nats-*``, ``request-reply``).
        ceiling_cpu_split_us: The same for the ceiling's processes.
    """

    scenario: str
    path: str
    messages: int
    seconds: float
    msgs_per_s: float
    ceiling_msgs_per_s: float
    ratio: float
    ceiling: str
    p50_us: float | None = None
    p99_us: float | None = None
    per_subscriber: tuple[int, ...] | None = None
    broker_rss_before_mib: float | None = None
    broker_rss_mib: float | None = None
    broker_peak_rss_mib: float | None = None
    broker_bytes_per_message: float | None = None
    publisher_rss_before_mib: float | None = None
    publisher_peak_rss_mib: float | None = None
    cpu_us: float | None = None
    ceiling_cpu_us: float | None = None
    ceiling_p50_us: float | None = None
    ceiling_p99_us: float | None = None
    server_cpu_us: float | None = None
    ceiling_server_cpu_us: float | None = None
    cpu_split_us: tuple[float, ...] | None = None
    ceiling_cpu_split_us: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict, for JSON."""
        return asdict(self)


Scenario = Callable[[bool], list[Result]]
"""A scenario takes ``quick`` (fewer messages, for a smoke run) and returns its results."""


def _lazy(module: str, function: str = "run", *args: str) -> Scenario:
    # Import a scenario only when it runs: an end-to-end scenario may pull in the whole system.
    def scenario(quick: bool) -> list[Result]:
        run: Callable[..., list[Result]] = getattr(importlib.import_module(module), function)
        return run(*args, quick)

    scenario.__name__ = f"{module}.{function}{''.join(f'[{arg}]' for arg in args)}"
    return scenario


SCENARIOS: dict[str, Scenario] = {
    "codec": _lazy("benchmarks.codec"),
    "dispatch": _lazy("benchmarks.dispatch"),
    "http-rest": _lazy("benchmarks.http_rest"),
    "embedded-events": _lazy("benchmarks.embedded_events"),
    "broker-events": _lazy("benchmarks.broker_events"),
    "durable-events": _lazy("benchmarks.durable_events"),
    "request-reply": _lazy("benchmarks.request_reply"),
    "nats-events": _lazy("benchmarks.broker_events", "run_nats"),
    "nats-request-reply": _lazy("benchmarks.request_reply", "run_nats"),
    "broker-events-2sub": _lazy("benchmarks.broker_events_2sub"),
    "backlog-memory": _lazy("benchmarks.backlog_memory"),
    # FastStream side by side (pip install -e '.[peers]'); each skips itself without FastStream or its server.
    **{
        f"peer-{kind}-{workload}": _lazy("benchmarks.peers", f"run_{workload.replace('-', '_')}", kind)
        for workload in ("events", "request-reply")
        for kind in ("nats", "jetstream", "rabbit", "redis")
    },
}
"""Every scenario by name, in the order ``python -m benchmarks`` runs them."""


def best_rate(run: Callable[[int], object], messages: int, repetitions: int) -> tuple[float, float]:
    """Time ``run(messages)`` ``repetitions`` times and return the best time and its messages per second.

    The best repetition is the one least disturbed by the rest of the machine.
    """
    run(min(messages, 1000))  # warm caches, specialise the interpreter's bytecode
    best = float("inf")
    for _ in range(repetitions):
        start = time.perf_counter()
        run(messages)
        best = min(best, time.perf_counter() - start)
    return best, messages / best
