"""Fixtures for the multi-process tests: a broker process, worker processes, and what they print.

Every process writes its events to stdout; one reader thread per process parses the lines into an
``Output`` shared by the test, which waits on it with a condition and a deadline (never a timed pause).
Processes are stopped with SIGTERM and killed when they do not end in time, whatever the test did.
"""

import asyncio
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from uuid import uuid4

import pytest

from minos.common import Config

WORKER = Path(__file__).with_name("worker.py")
BROKER_READY = "minos-networks broker: serving on"
BROKER_STATS = re.compile(
    r"minos-networks broker: stopped; published (?P<published>\d+), delivered (?P<delivered>\d+), "
    r"redelivered (?P<redelivered>\d+), still held (?P<held>\d+)"
)
HEARTBEAT = 0.2  # seconds, for the broker and every peer: a dead peer is noticed within about 0.6 s
START_TIMEOUT = 15.0  # seconds a process gets to print its ready line (two cores, several starting at once)
STOP_TIMEOUT = 8.0  # seconds a process gets to end after SIGTERM before it is killed

GROUP_A = "svc-a"
GROUP_B = "svc-b"
SHARED_TOPIC = "shared"  # both groups subscribe
A_WORK_TOPIC = "a.work"  # group A only
A_ASK_TOPIC = "a.ask"
B_ASK_TOPIC = "b.ask"


class Handled(NamedTuple):
    """One ``handled`` line of a worker: it ran its handler on this message."""

    worker: str
    identifier: str
    topic: str
    content: str


class Output:
    """The lines every process of a test printed, by process, with a condition to wait on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.lines: dict[str, list[str]] = {}
        self.handled: list[Handled] = []
        self.ended: set[str] = set()
        # Kept as lines come, so a predicate checked after every line stays cheap.
        self._counts: Counter[tuple[str, str]] = Counter()  # (worker, topic) -> records
        self._identifiers: dict[str, set[str]] = {}  # topic -> distinct identifiers handled

    def add(self, source: str, line: str) -> None:
        with self._condition:
            self.lines.setdefault(source, []).append(line)
            if line.startswith("handled\t"):
                fields = line.split("\t", 4)
                if len(fields) == 5:
                    record = Handled(*fields[1:])
                    self.handled.append(record)
                    self._counts[record.worker, record.topic] += 1
                    self._identifiers.setdefault(record.topic, set()).add(record.identifier)
            self._condition.notify_all()

    def end(self, source: str) -> None:
        with self._condition:
            self.ended.add(source)
            self._condition.notify_all()

    def snapshot(self, topic: str | None = None) -> list[Handled]:
        """The handled records so far (of ``topic`` only, if given)."""
        with self._condition:
            return [record for record in self.handled if topic is None or record.topic == topic]

    def count(self, worker: str, topic: str) -> int:
        """How many records ``worker`` printed for ``topic`` so far."""
        with self._condition:
            return self._counts[worker, topic]

    def all_handled(self, identifiers: set[str], topic: str) -> bool:
        """Whether every one of ``identifiers`` was handled on ``topic`` by some worker."""
        with self._condition:
            handled = self._identifiers.get(topic, set())
            return len(handled) >= len(identifiers) and identifiers <= handled

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Block until ``predicate()`` holds (checked after every line), or fail after ``timeout`` s."""
        with self._condition:
            if not self._condition.wait_for(predicate, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    async def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """``wait_for`` from a coroutine, without blocking the caller's event loop."""
        await asyncio.to_thread(self.wait_for, predicate, timeout, what)


class Process:
    """A child process whose stdout lines go to ``output`` under ``name``; stderr goes to a file."""

    def __init__(self, name: str, argv: list[str], output: Output, log_dir: Path) -> None:
        self.name = name
        self.output = output
        self.stderr_path = log_dir / f"{name}.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
            )
        self._terminated = False
        self._reader = threading.Thread(target=self._read, name=f"test-output-{name}", daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.popen.pid} returncode={self.popen.returncode}>"

    @property
    def lines(self) -> list[str]:
        return list(self.output.lines.get(self.name, []))

    def _read(self) -> None:
        assert self.popen.stdout is not None
        try:
            for raw in self.popen.stdout:
                self.output.add(self.name, raw.decode(errors="replace").rstrip("\n"))
        finally:
            self.output.end(self.name)

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The first line starting with ``prefix``, waiting up to ``timeout`` s (fails if the process ends)."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.output.lines.get(self.name, ()) if line.startswith(prefix)]
            return bool(found) or self.name in self.output.ended

        self.output.wait_for(seen, timeout, f"{self.name} to print {prefix!r}")
        if not found:
            raise AssertionError(f"{self.name} ended without printing {prefix!r}: {self.diagnostics()}")
        return found[0]

    def terminate(self) -> None:
        """Send SIGTERM once (a second one could land after the process's handler is gone, and kill it)."""
        if not self._terminated and self.popen.poll() is None:
            self._terminated = True
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait up to ``timeout`` s, SIGKILL if still running; reap, close the pipe, return the code."""
        try:
            self.terminate()
            if self.popen.poll() is None:
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(STOP_TIMEOUT)
        finally:
            self._reader.join(STOP_TIMEOUT)
            if self.popen.stdout is not None and not self._reader.is_alive():
                self.popen.stdout.close()
        return self.popen.returncode

    def diagnostics(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"{self!r}; last stdout lines {self.lines[-5:]!r}; stderr tail {stderr[-2000:]!r}"


@dataclass
class Broker:
    process: Process
    endpoint: str

    def stop(self) -> dict[str, int]:
        """Stop it with SIGTERM; return the counters it prints on the way out."""
        code = self.process.stop()
        assert code == 0, f"the broker exited with {code}: {self.process.diagnostics()}"
        for line in self.process.lines:
            match = BROKER_STATS.match(line)
            if match:
                return {key: int(value) for key, value in match.groupdict().items()}
        raise AssertionError(f"the broker printed no stats line: {self.process.diagnostics()}")


class Processes:
    """Starts the processes of one test; ``stop_all`` reaps every one of them, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.output = Output()
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, argv: list[str]) -> Process:
        """Start ``argv`` as ``name`` (made unique: lines are kept by name, so a second broker is broker-2)."""
        taken = {process.name for process in self.started}
        unique, number = name, 1
        while unique in taken:
            number += 1
            unique = f"{name}-{number}"
        process = Process(unique, argv, self.output, self.log_dir)
        self.started.append(process)
        return process

    def start_broker(self, bind: str, name: str = "broker", *extra: str) -> Broker:
        """A broker process on ``bind`` (``extra`` command-line options), once it serves (port 0 resolved)."""
        process = self.start(
            name,
            [
                sys.executable,
                "-m",
                "minos.networks",
                "broker",
                "--bind",
                bind,
                "--heartbeat-interval",
                str(HEARTBEAT),
                *extra,
            ],
        )
        line = process.wait_line(BROKER_READY, START_TIMEOUT)
        endpoints = line[len(BROKER_READY) :].split()
        assert len(endpoints) == 1, f"expected one bound endpoint, got {line!r}"
        return Broker(process, endpoints[0])

    def start_worker(
        self, endpoint: str, name: str, group: str, topics: Iterable[str], **options: object
    ) -> Process:
        """A worker process, not ready yet (wait for its ``ready`` line); options become ``--option value``."""
        argv = [sys.executable, str(WORKER), "--endpoint", endpoint, "--group", group, "--name", name]
        for topic in topics:
            argv += ["--topic", topic]
        for option, value in options.items():
            argv += [f"--{option.replace('_', '-')}", str(value)]
        return self.start(name, argv)

    def start_workers(self, endpoint: str, **options: object) -> dict[str, Process]:
        """The three workers of these tests, ready: a1 and a2 in group A (BrokerPort), b1 in group B (BrokerHandler)."""
        a_topics = (SHARED_TOPIC, A_WORK_TOPIC, A_ASK_TOPIC)
        workers = {
            "a1": self.start_worker(endpoint, "a1", GROUP_A, a_topics, runner="port", **options),
            "a2": self.start_worker(endpoint, "a2", GROUP_A, a_topics, runner="port", **options),
            "b1": self.start_worker(
                endpoint, "b1", GROUP_B, (SHARED_TOPIC, B_ASK_TOPIC), runner="handler", **options
            ),
        }
        for worker in workers.values():
            worker.wait_line("ready\t", START_TIMEOUT)
        return workers

    def stop(self, *processes: Process) -> None:
        """Stop these processes gracefully, at once, and check each ended well (exit 0, said stopped)."""
        for process in processes:
            process.terminate()
        for process in processes:
            code = process.stop()
            assert code == 0, f"{process.name} exited with {code}: {process.diagnostics()}"
            assert process.lines[-1:] == [f"stopped\t{process.name}"], process.diagnostics()

    def stop_all(self) -> None:
        """Stop every process at once, newest first; reap each one even when another fails to stop."""
        for process in reversed(self.started):
            process.terminate()
        errors = []
        for process in reversed(self.started):
            try:
                process.stop()
            except Exception as error:  # keep reaping the others; report the first failure after
                errors.append(error)
        if errors:
            raise errors[0]


@pytest.fixture
def processes(tmp_path):
    """Start processes through this; all are stopped (killed if need be) and reaped at teardown."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(params=["ipc", "tcp"])
def bind(request):
    """Where the broker process binds: a unix socket in a short directory, or a free tcp port."""
    if request.param == "ipc":
        return f"ipc://{request.getfixturevalue('short_dir') / 'broker.sock'}"
    return "tcp://127.0.0.1:0"  # the broker picks a free port and prints it


@pytest.fixture
def broker(processes, bind):
    """A broker process, serving."""
    return processes.start_broker(bind)


def client_config(endpoint: str, *, close_timeout: float = 2.0) -> Config:
    """The config of a service in the test process that reaches the broker process at ``endpoint``."""
    return Config(
        {
            "name": f"tester{uuid4().hex[:6]}",
            "interfaces": {
                "broker": {
                    "endpoint": endpoint,
                    "embedded": False,
                    "heartbeat_interval": HEARTBEAT,
                    "close_timeout": close_timeout,
                }
            },
        }
    )


@pytest.fixture
def make_config():
    """``make_config(endpoint, close_timeout=...)``: a test-process service config for a broker process."""
    return client_config


@dataclass
class Cluster:
    """A broker process and three ready workers: a1 and a2 in group A, b1 in group B."""

    processes: Processes
    broker: Broker
    workers: dict[str, Process]
    config: Config
    """For clients and publishers in the test process."""

    group_a = GROUP_A
    group_b = GROUP_B
    shared_topic = SHARED_TOPIC
    a_work_topic = A_WORK_TOPIC
    a_ask_topic = A_ASK_TOPIC
    b_ask_topic = B_ASK_TOPIC

    @property
    def output(self) -> Output:
        return self.processes.output

    def stop_workers(self) -> None:
        """Stop the live workers gracefully (each must exit 0 having said ``stopped``)."""
        self.processes.stop(*(w for w in self.workers.values() if w.popen.poll() is None))


@pytest.fixture
def start_cluster(processes, broker):
    """``start_cluster(**worker_options)``: the broker's three workers, started and ready."""

    def start(**options: object) -> Cluster:
        workers = processes.start_workers(broker.endpoint, **options)
        return Cluster(processes, broker, workers, client_config(broker.endpoint))

    return start
