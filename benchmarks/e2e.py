"""What the end-to-end scenarios share: worker processes and their line protocol, the messages, percentiles.

A scenario that spans processes runs each side as a worker, ``python -m benchmarks.workers ROLE ...``
(or the broker itself, ``python -m minos.networks broker``), started with ``Worker``. A worker prints a
``ready`` line once it is set up, then answers commands read from its stdin, one line each, on its
stdout; it stops when its stdin closes. Nothing sleeps to synchronise: every step waits for a line,
within a deadline, and a worker that dies or misses one fails the scenario with its stderr.

Clocks: workers stamp times with ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process
of the machine), so a time taken by the publisher and one taken by the handler can be subtracted.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any, TypeVar

import msgpack

from benchmarks.codec import typical_message
from minos.networks import BrokerMessageV1, Request, Response, enroute
from minos.networks.actors import run_main
from minos.networks.protocol import FrameCodec

__all__ = [
    "COMMAND_TOPIC",
    "COUNTER",
    "EVENT_TOPIC",
    "NATS_URL",
    "PROFILE_ENV",
    "ROOT",
    "BenchService",
    "HandledCounter",
    "Worker",
    "WorkerError",
    "Workers",
    "broker_config",
    "check_count",
    "command_messages",
    "delete_nats_stream",
    "event_messages",
    "event_stream",
    "ipc_directory",
    "keep_in_flight",
    "measure_events",
    "nats_stream",
    "over_nats",
    "percentiles",
    "plain_messages",
    "received_total",
    "start_broker",
    "timeout_for",
    "wire_size",
    "worker_argv",
]

ROOT = Path(__file__).resolve().parent.parent
_R = TypeVar("_R")

NATS_URL = os.environ.get("MINOS_BENCH_NATS_URL", "nats://127.0.0.1:4222")
"""The NATS JetStream server of the ``nats-*`` scenarios."""
EVENT_TOPIC = "order.created"
COMMAND_TOPIC = "order.get"
STDERR_TAIL = 3000  # characters of a failed worker's stderr quoted in the error


class WorkerError(RuntimeError):
    """A worker died, answered something unexpected or did not answer in time."""


def check_count(what: str, received: int, sent: int) -> None:
    """Fail loudly unless every message sent was received, exactly once.

    Raises:
        WorkerError: ``received != sent``.
    """
    if received != sent:
        gap = f"{sent - received} missing" if received < sent else f"{received - sent} extra"
        raise WorkerError(
            f"{what}: {received} messages received for {sent} sent ({gap}); "
            "a benchmark that loses or duplicates messages measures nothing"
        )


def percentiles(samples_ns: Sequence[int]) -> tuple[float, float]:
    """The median and 99th percentile of latencies in nanoseconds, in microseconds."""
    ordered = sorted(samples_ns)
    if not ordered:
        raise ValueError("no latency samples")
    last = len(ordered) - 1

    def at(fraction: float) -> float:
        return ordered[min(last, int(fraction * len(ordered)))] / 1000

    return at(0.50), at(0.99)


# Messages ---------------------------------------------------------------------------------------------


def event_messages(count: int) -> list[BrokerMessageV1]:
    """``count`` order-created events (the codec scenario's message, no reply topic), each its own identifier.

    The identifiers differ because the receiving side filters duplicates by identifier.
    """
    template = typical_message()
    payload, strategy = template.payload, template.strategy
    return [
        BrokerMessageV1(EVENT_TOPIC, payload, identifier=uuid.uuid4(), strategy=strategy)
        for _ in range(count)
    ]


def event_stream(count: int) -> Iterator[BrokerMessageV1]:
    """``event_messages(count)`` made one at a time, so that only what is in flight takes memory."""
    template = typical_message()
    payload, strategy = template.payload, template.strategy
    for _ in range(count):
        yield BrokerMessageV1(EVENT_TOPIC, payload, identifier=uuid.uuid4(), strategy=strategy)


def command_messages(count: int) -> list[BrokerMessageV1]:
    """``count`` order-get requests carrying the same content; the client adds its reply topic."""
    template = typical_message()
    payload, strategy = template.payload, template.strategy
    return [
        BrokerMessageV1(COMMAND_TOPIC, payload, identifier=uuid.uuid4(), strategy=strategy)
        for _ in range(count)
    ]


def wire_size(message: BrokerMessageV1) -> int:
    """The bytes of ``message`` on the wire: topic frame plus body frame."""
    return sum(len(frame) for frame in FrameCodec().encode(message))


def plain_messages(count: int, size: int) -> list[dict[str, Any]]:
    """``count`` plain dicts of about ``size`` msgpack bytes each, with distinct ids.

    Shaped like the path's message (topic, identifier, headers and the same content, with the UUID as
    bytes; one-letter keys, as the path's body is an array) and padded to exactly ``size`` bytes, so
    the ceiling moves the same bytes; if the dict needs more than ``size`` unpadded (its keys cost a
    few bytes the path's array does not pay), it goes unpadded, a few bytes bigger.
    """
    template = typical_message()
    content = {k: v.bytes if isinstance(v, uuid.UUID) else v for k, v in template.content.items()}
    base: dict[str, Any] = {
        "t": EVENT_TOPIC,
        "i": uuid.uuid4().bytes,
        "h": dict(template.headers),
        "c": content,
    }
    unpadded = len(msgpack.packb(base))
    # "p" and a pad's header take 2 bytes or more; str and bytes headers differ, so one of them fits.
    fillers = (unit * pad for pad in range(size - unpadded - 2, -1, -1) for unit in ("x", b"x"))
    fit = next((filler for filler in fillers if len(msgpack.packb({**base, "p": filler})) == size), None)
    if fit is not None:
        base["p"] = fit
    return [{**base, "i": uuid.uuid4().bytes} for _ in range(count)]


# The service the handler side runs -------------------------------------------------------------------


class HandledCounter:
    """Counts handled messages from any thread and tells, once, when a target is reached.

    Args:
        clock: Stamps the time the target was reached (and, when stamping, each message handled).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._count = itertools.count(1)  # next() is atomic under the GIL: safe across dispatchers
        self.total = 0
        self._target = 0
        self._base = 0
        self.reached_at = 0.0
        self._on_target: Callable[[], None] | None = None
        self._stamping = False
        self.first_at = 0.0
        self.last_at = 0.0

    def arm(self, target: int, on_target: Callable[[], None] | None, *, stamp: bool = False) -> None:
        """Count from zero again and call ``on_target`` (from the handler's thread) at ``target``.

        Args:
            target: The count that calls ``on_target``; -1 for none (the count is read with ``since_armed``).
            stamp: Also stamp the first and the last message handled since (``first_at``, ``last_at``):
                a clock read per message, which only scenarios that need it pay.
        """
        self._base = self.total
        self._target = target
        self.reached_at = self.first_at = self.last_at = 0.0
        self._stamping = stamp
        self._on_target = on_target

    def hit(self) -> None:
        """One more message handled; runs in the handler's thread."""
        self.total = total = next(self._count)
        if self._stamping:
            self.last_at = now = self._clock()
            if not self.first_at:
                self.first_at = now
        if total - self._base == self._target and self._on_target is not None:
            self.reached_at = self._clock()
            self._on_target()

    @property
    def since_armed(self) -> int:
        """Messages handled since the last ``arm``."""
        return self.total - self._base


COUNTER = HandledCounter()
"""What BenchService's handlers count; the scenario arms it."""


class BenchService:
    """The service on the receiving side: an event handler that only counts, a command that echoes."""

    @enroute.broker.event(EVENT_TOPIC)
    async def order_created(self, request: Request) -> None:
        COUNTER.hit()

    @enroute.broker.command(COMMAND_TOPIC)
    async def order_get(self, request: Request) -> Response:
        COUNTER.hit()
        return Response(await request.content())


# Where the broker is -----------------------------------------------------------------------------------


def broker_config(endpoint: str) -> dict[str, Any]:
    """The ``interfaces.broker`` section for ``endpoint``: a ZeroMQ endpoint, or ``nats://host:port/STREAM``.

    A NATS endpoint names the server and the stream (also the subject prefix) the scenario uses.
    """
    if endpoint.startswith("nats://"):
        server, _, stream = endpoint.rpartition("/")
        return {
            "transport": "nats",
            "nats": {"servers": [server], "stream": stream, "subject_prefix": stream},
        }
    return {"endpoint": endpoint, "embedded": False}


@contextmanager
def nats_stream() -> Iterator[str | None]:
    """A ``nats://host:port/STREAM`` endpoint for a fresh stream, deleted afterwards; None without a server.

    The stream is created by the scenario's first connection (file storage, as a service would have it).
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(NATS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1.0).close()
    except OSError:
        yield None
        return
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        yield f"{NATS_URL}/{stream}"
    finally:
        delete_nats_stream(stream)


def over_nats(scenario: str, run: Callable[[str, str], list[_R]]) -> list[_R]:
    """``run(endpoint, raw_stream)``: our side on a fresh stream (``nats_stream``), the raw nats-py program on
    a stream of its own named after it; both deleted afterwards. [] and one line on stderr without a server."""
    with nats_stream() as endpoint:
        if endpoint is None:
            print(f"{scenario}: skipped, no NATS server answers at {NATS_URL}", file=sys.stderr)
            return []
        stream = f"benchraw-{endpoint.rpartition('/')[2]}"
        try:
            return run(endpoint, stream)
        finally:
            delete_nats_stream(stream)


def delete_nats_stream(stream: str) -> None:
    """Delete the JetStream stream ``stream`` of the server at ``NATS_URL``, if it is there."""

    async def delete() -> None:
        import nats
        import nats.js.errors

        client = await nats.connect(NATS_URL, allow_reconnect=False)
        try:
            await client.jetstream(timeout=10).delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await client.close()

    run_main(delete())


# Worker processes -------------------------------------------------------------------------------------


@contextmanager
def ipc_directory() -> Iterator[Path]:
    """A fresh private directory for ``ipc://`` socket files (a short path: ipc paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="mb-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Worker:
    """A child process spoken to in lines: commands to its stdin, answers from its stdout.

    Start several, then ``wait_ready`` on each, so they start in parallel. ``close`` always reaps the
    process: it closes its stdin (a worker's signal to stop), waits, then terminates, then kills.

    Args:
        name: Names the worker in errors.
        argv: The command.
        ready: The prefix of the line the worker prints once it is ready.
        stdin: Whether the worker reads commands (the broker does not: it stops on SIGTERM).
    """

    def __init__(self, name: str, argv: Sequence[str], *, ready: str, stdin: bool = True) -> None:
        self.name = name
        self.ready = ready
        argv = _profiled(name, argv)
        self._buffer = b""
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._stderr_tail = ""
        self.process = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.ready_line = ""

    def __repr__(self) -> str:
        return f"<Worker {self.name} pid={self.process.pid}>"

    def wait_ready(self, timeout: float) -> str:
        """Wait for the ready line and return it."""
        self.ready_line = self.expect(self.ready, timeout)
        return self.ready_line

    def send(self, line: str) -> None:
        """Write one command line."""
        stdin = self.process.stdin
        assert stdin is not None, f"{self.name} takes no commands"
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise self._error(f"died before taking the command {line!r}") from None

    def take_buffer(self) -> bytes:
        """What was read from the worker's stdout past the last line returned; whoever takes it reads on."""
        buffer, self._buffer = self._buffer, b""
        return buffer

    def readline(self, timeout: float) -> str:
        """The next line the worker prints, within ``timeout`` seconds."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        fd = stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(f"printed no line within {timeout} s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.process.wait(2)
                    raise self._error(f"exited with code {self.process.returncode} before answering")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def expect(self, prefix: str, timeout: float) -> str:
        """The next line, which must start with ``prefix``; its words after the prefix."""
        line = self.readline(timeout)
        if not line.startswith(prefix):
            raise self._error(f"answered {line!r}, expected a line starting with {prefix!r}")
        return line[len(prefix) :].strip()

    def ask(self, command: str, prefix: str, timeout: float) -> str:
        """Send ``command`` and return the answer's words after ``prefix``."""
        self.send(command)
        return self.expect(prefix, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker: close its stdin (or SIGTERM it), then terminate, then kill; always reap."""
        process = self.process
        try:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    pass
            else:
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(2)
        finally:
            if process.stdout is not None:
                process.stdout.close()
            if not self._stderr.closed:
                self._stderr_tail = self.stderr_tail()
                self._stderr.close()

    def stderr_tail(self) -> str:
        """The last part of what the worker wrote to stderr (kept once it is closed)."""
        if self._stderr.closed:
            return self._stderr_tail
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        return text[-STDERR_TAIL:]

    def _error(self, what: str) -> WorkerError:
        code = self.process.poll()
        state = "still running" if code is None else f"exit code {code}"
        return WorkerError(
            f"worker {self.name} (pid {self.process.pid}, {state}) {what}; its stderr:\n{self.stderr_tail()}"
        )


PROFILE_ENV = "BENCH_CPROFILE"
"""Set to a directory, it runs every Python worker under cProfile, writing ``DIR/NAME-N.prof`` at its exit."""
_profiles = itertools.count(1)


class Workers(ExitStack):
    """The worker processes of a scenario: each one ``start``-ed is reaped at exit, the last started first."""

    def start(self, worker: Worker) -> Worker:
        """Reap ``worker`` when the stack closes, whatever happens; return it."""
        self.callback(worker.close)
        return worker


def _profiled(name: str, argv: Sequence[str]) -> Sequence[str]:
    # cProfile sees only the thread it was started in (the worker's main thread: the publisher's loop and
    # the broker's, not a handler's dispatcher thread), and writes only on a clean exit (stdin closed,
    # or SIGTERM for the broker); the raw workers die by SIGTERM and write nothing.
    directory = os.environ.get(PROFILE_ENV)
    if not directory or list(argv[:2]) != [sys.executable, "-m"]:
        return argv
    output = Path(directory) / f"{name}-{next(_profiles)}.prof"
    return [sys.executable, "-m", "cProfile", "-o", str(output), *argv[1:]]


def worker_argv(role: str, *args: object) -> list[str]:
    """The command of a worker role of ``benchmarks.workers``."""
    return [sys.executable, "-m", "benchmarks.workers", role, *map(str, args)]


def start_broker(endpoint: str, *options: str, name: str = "broker") -> Worker:
    """Start ``python -m minos.networks broker --bind endpoint [OPTIONS]``; wait on it with ``wait_ready``.

    With ``--stats`` among the options, read its lines with ``benchmarks.probes.StatsFeed``: a broker
    whose stdout nobody reads blocks once the pipe is full.
    """
    from minos.networks.cli.broker import READY_LINE

    return Worker(
        name,
        [sys.executable, "-m", "minos.networks", "broker", "--bind", endpoint, *options],
        ready=READY_LINE,
        stdin=False,
    )


def timeout_for(messages: int) -> float:
    """How long a repetition of ``messages`` may take before it counts as stuck (far above any real run)."""
    return 10.0 + messages / 500  # 2,000 a second timed out nats-request-reply at a load of 12 on 2 cores


def measure_events(
    producer: Worker,
    consumer: Worker,
    messages: int,
    meter: AbstractContextManager[object] | None = None,
    timeout: float | None = None,
) -> float:
    """Have ``producer`` send ``messages`` to ``consumer``; seconds from the first send to the last received.

    The consumer is armed first and counts what it receives: fewer than sent fails loudly here, more
    shows in ``received_total``. The producer builds the messages first; ``meter`` (a
    ``probes.CpuMeter``, say) is entered only around the sending and receiving. ``timeout`` bounds
    each step (default ``timeout_for(messages)``, made for our paths; slower peers need more).
    """
    timeout = timeout_for(messages) if timeout is None else timeout
    consumer.ask(f"expect {messages} {timeout}", "armed", timeout)
    producer.ask(f"prepare {messages}", "prepared", timeout)
    with meter if meter is not None else nullcontext():
        producer.send(f"send {messages}")
        start, _ = map(float, producer.expect("sent", timeout + 5).split())
        answer = consumer.readline(timeout + 5)
    if not answer.startswith("done"):
        raise WorkerError(
            f"{consumer.name} answered {answer!r} for {messages} messages sent by {producer.name}"
        )
    received, finished = answer.split()[1:]
    check_count(f"{producer.name} -> {consumer.name}", int(received), messages)
    return float(finished) - start


def received_total(consumer: Worker) -> int:
    """How many messages ``consumer`` received since it started."""
    return int(consumer.ask("total", "total", 10))


_Request = TypeVar("_Request")
_Reply = TypeVar("_Reply")


async def keep_in_flight(
    requests: Sequence[_Request],
    depth: int,
    *,
    send: Callable[[_Request], Awaitable[object]],
    receive: Callable[[], Awaitable[_Reply]],
    key: Callable[[_Request], Hashable],
    reply_key: Callable[[_Reply], Hashable],
    what: str,
) -> tuple[float, list[int]]:
    """Send ``depth`` requests at once, and another as each reply comes: (seconds, latencies in ns).

    A request's latency runs from its send to its reply, matched by ``key`` and ``reply_key``; a reply that
    answers no request outstanding, or a send that fails, ends the measurement with an error naming ``what``.
    """
    clock = time.perf_counter_ns
    sent_at: dict[Hashable, int] = {}
    latencies: list[int] = []
    sending: set[asyncio.Future[object]] = set()
    failures: list[BaseException] = []
    queue = iter(requests)

    def sent(task: asyncio.Future[object]) -> None:
        sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    def send_next() -> None:
        request = next(queue, None)
        if request is not None:
            sent_at[key(request)] = clock()
            task = asyncio.ensure_future(send(request))
            sending.add(task)
            task.add_done_callback(sent)

    start = time.perf_counter()
    try:
        for _ in range(depth):
            send_next()
        for _ in range(len(requests)):
            reply = await receive()
            received = clock()
            started = sent_at.pop(reply_key(reply), None)
            if started is None:
                raise WorkerError(f"{what}: a reply answers {reply_key(reply)!r}, no request outstanding")
            latencies.append(received - started)
            send_next()
            if failures:
                raise failures[0]
        seconds = time.perf_counter() - start
    finally:
        for task in list(sending):
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
    return seconds, latencies
