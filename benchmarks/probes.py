"""What the scenarios read from outside a worker process: its CPU time and memory in /proc, and a broker's ``--stats`` lines.

CPU: the time a whole process ran on a core (every thread, ZeroMQ's I/O threads included) from
``/proc/PID/task/*/schedstat``, Linux only. ``CpuMeter`` adds up what a set of processes spent while it was running:
CPU seconds per message move much less on a shared machine than messages per second do, since time
spent waiting for a core is not counted.

Memory: ``VmRSS`` (resident now) and ``VmHWM`` (the peak of ``VmRSS`` since the process started) from
``/proc/PID/status``, Linux only. The kernel keeps the peak, so nothing has to sample at the right moment.

Broker stats: a broker started with ``--stats`` prints one ``key=value`` line per interval (see
``minos.networks.cli.live_view``). ``StatsFeed`` reads them in a thread of its own, so the broker never
blocks on a full pipe, and lets the scenario wait until a counter reaches a figure: a wait on lines the
broker prints, bounded by a deadline, not a sleep.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.e2e import Worker, WorkerError

__all__ = ["MIB", "CpuMeter", "Memory", "StatsFeed", "cpu_seconds", "pids", "read_memory", "server_pid"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Memory:
    """A process's resident memory now and its peak so far, in bytes."""

    rss: int
    peak: int

    @property
    def rss_mib(self) -> float:
        """``rss`` in MiB."""
        return self.rss / MIB

    @property
    def peak_mib(self) -> float:
        """``peak`` in MiB."""
        return self.peak / MIB


def read_memory(pid: int) -> Memory:
    """``VmRSS`` and ``VmHWM`` of process ``pid``, from ``/proc/PID/status``.

    Raises:
        WorkerError: The process is gone, or the kernel does not report these fields (not Linux).
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError as error:
        raise WorkerError(f"cannot read the memory of process {pid}: {error}") from error
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            number, unit = value.split()
            if unit != "kB":
                raise WorkerError(f"/proc/{pid}/status gives {key} in {unit!r}, expected kB")
            fields[key] = int(number) * 1024
    if len(fields) != 2:
        raise WorkerError(f"/proc/{pid}/status has no VmRSS and VmHWM; backlog-memory needs Linux")
    return Memory(rss=fields["VmRSS"], peak=fields["VmHWM"])


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has run so far, user and system, summed over its live threads.

    Read from ``/proc/PID/task/TID/schedstat`` (nanoseconds; the ``/proc/PID/stat`` tick counters count
    in hundredths of a second, too coarse for a quick run).

    Raises:
        WorkerError: The process is gone, or there is no ``/proc`` (not Linux).
    """
    total = 0
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            try:
                total += int(Path(task.path, "schedstat").read_text().split()[0])
            except FileNotFoundError:  # the thread ended meanwhile
                continue
    except OSError as error:
        raise WorkerError(f"cannot read the CPU time of process {pid}: {error}") from error
    return total / 1e9


def pids(*workers: Worker) -> list[int]:
    """The process ids of ``workers``, for a ``CpuMeter``."""
    return [worker.process.pid for worker in workers]


def server_pid(command: str, port: int | None) -> int | None:
    """The pid of the one local process named ``command`` with ``port`` among its arguments, or None.

    For the CPU of a server the scenarios talk to (``nats-server``, ``redis-server``; with ``port`` None,
    the one process of that name, as RabbitMQ's ``beam.smp``). None when there are several, or none
    readable: test suites start servers of their own on other ports.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().strip() != command:
                continue
            arguments = Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if port is None or str(port) in arguments.replace(":", "\0").split("\0"):
            found.append(int(entry.name))
    return found[0] if len(found) == 1 else None


class CpuMeter:
    """Adds up the CPU time a set of processes spends inside ``with meter:`` blocks (several allowed).

    Args:
        pids: The processes to watch; ``os.getpid()`` for this one.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = list(pids)
        self.seconds = 0.0
        """CPU seconds spent by all of ``pids`` inside the blocks so far."""
        self._start = 0.0

    def _now(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds += self._now() - self._start

    def per_message_us(self, messages: int) -> float:
        """Microseconds of CPU per message, for ``messages`` handled inside the blocks in all."""
        return self.seconds / messages * 1e6


class StatsFeed:
    """Reads the ``--stats`` lines of a broker worker (after its ready line) and keeps the latest counters.

    Args:
        broker: A broker worker started with ``--stats``; its ready line already read.
    """

    def __init__(self, broker: Worker) -> None:
        from minos.networks.cli.live_view import STATS_PREFIX

        self._prefix = STATS_PREFIX
        self._broker = broker
        self._changed = threading.Condition()
        self._latest: dict[str, str] = {}
        self._ended = False
        stdout = broker.process.stdout
        assert stdout is not None
        self._fd = os.dup(stdout.fileno())  # ours to close: the worker closes its own at exit
        self._pending = broker.take_buffer()
        self._thread = threading.Thread(target=self._read, name=f"stats-{broker.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = self._pending
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                os.close(self._fd)
                with self._changed:
                    self._ended = True
                    self._changed.notify_all()
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            latest = None
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith(self._prefix):
                    latest = dict(word.split("=", 1) for word in text[len(self._prefix) :].split())
            if latest is not None:
                with self._changed:
                    self._latest = latest
                    self._changed.notify_all()

    def wait_for(self, name: str, target: int, timeout: float, *, at_most: bool = False) -> int:
        """Wait until counter ``name`` is at least ``target`` (``at_most``: at most), and return it.

        Raises:
            WorkerError: The broker stopped printing, or ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout

        def there() -> bool:
            if name not in self._latest:  # no line yet: nothing is known
                return False
            value = int(self._latest[name])
            return value <= target if at_most else value >= target

        with self._changed:
            while not there():
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    state = (
                        "stopped printing stats" if self._ended else f"did not get there within {timeout} s"
                    )
                    raise WorkerError(
                        f"{self._broker.name}: {name}={self._latest.get(name, '?')}, waiting for "
                        f"{'at most' if at_most else 'at least'} {target}; it {state}; its stderr:\n"
                        f"{self._broker.stderr_tail()}"
                    )
                self._changed.wait(remaining)
            return int(self._latest[name])
