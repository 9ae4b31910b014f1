"""Fixtures for the whole suite."""

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

# The prefix every thread started by minos.networks carries (minos.networks.actors.THREAD_PREFIX); spelled
# out here so this check works even when the package fails to import.
MINOS_THREAD_PREFIX = "minos-"
THREAD_END_GRACE = 2.0  # seconds a thread that is already ending gets to finish before it counts as leaked


def _minos_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith(MINOS_THREAD_PREFIX)}


@pytest.fixture(autouse=True)
def no_minos_thread_outlives_its_test():
    """Fail a test that leaves a ``minos-`` thread running (joined with a bounded wait first)."""
    before = _minos_threads()
    yield
    deadline = time.monotonic() + THREAD_END_GRACE
    leaked = []
    for thread in sorted(_minos_threads() - before, key=lambda thread: thread.name):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread.name)
    if leaked:
        pytest.fail(
            f"threads still running {THREAD_END_GRACE} s after the test: {leaked}; stop what started them"
        )


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Writes a module with the given source under a fresh unique name and returns that name.

    For tests that need import paths (services, middleware listed in a Config).
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(source: str) -> str:
        name = f"fixture_module_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)


POSTGRES_DSN = os.environ.get("MINOS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable(dsn: str) -> str | None:
    """None when ``dsn`` answers, else why not."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The test PostgreSQL server (``MINOS_TEST_POSTGRES``); skips without one, but fails when ``CI`` is set."""
    why = _postgres_reachable(POSTGRES_DSN)
    if why is not None:
        message = (
            f"no PostgreSQL server at {POSTGRES_DSN} ({why}); set MINOS_TEST_POSTGRES to run these tests"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_DSN


async def query_postgres(dsn: str, schema: str, sql: str) -> list[tuple]:
    """Run ``sql`` in ``schema`` (created when missing) of the test database and return its rows as tuples."""
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(f'SET search_path TO "{schema}"')
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema in the test database, dropped with everything in it after the test."""
    import asyncio

    import asyncpg

    schema = f"minos_test_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        connection = await asyncpg.connect(postgres_dsn, timeout=5)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()

    yield schema
    asyncio.run(drop())


# NATS JetStream -------------------------------------------------------------------------------------------

NATS_URL = (
    "nats://127.0.0.1:4222"  # the machine's server (nats-server -js); override with MINOS_TEST_NATS_URL
)


def nats_url() -> str:
    """The NATS server the tests use."""
    import os

    return os.environ.get("MINOS_TEST_NATS_URL", NATS_URL)


def require_nats() -> str:
    """The NATS URL when a server answers there; else skip the test, or fail it when ``CI`` is set."""
    import os
    import socket
    from urllib.parse import urlsplit

    url = nats_url()
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1.0).close()
    except OSError as error:
        why = f"no NATS server answers at {url} ({error}); start one with JetStream: nats-server -js"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI is set, so this fails instead of skipping)")
        pytest.skip(why)
    return url


@pytest.fixture
def nats_server_url():
    """The URL of a NATS server that answers; skips the test without one (fails it when ``CI`` is set)."""
    return require_nats()


@pytest.fixture
async def nats_settings(nats_server_url):
    """NatsSettings for a stream and subject prefix of this test's own; the stream is deleted afterwards.

    Skips without a NATS server (fails when ``CI`` is set). The ack wait is short, so what a killed
    peer held comes back within the tests' timeouts.
    """
    import nats
    import nats.js.errors

    from minos.networks.transports import NatsSettings

    url = nats_server_url
    name = f"minos-test-{uuid.uuid4().hex[:12]}"
    settings = NatsSettings(
        servers=(url,),
        stream=name,
        subject_prefix=name,
        ack_wait=1.0,
        storage="memory",
        transient_ttl=5.0,
        pull_expires=0.5,
    )
    yield settings
    client = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        await client.jetstream(timeout=5).delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass  # the test never opened a connection
    finally:
        await client.close()


# minos-networks commands in real processes ---------------------------------------------------------------


class CliProcess:
    """``minos-networks ARGS`` running, its stdout lines queued by a reader thread so every wait has a deadline.

    Args:
        args: The command's arguments (``run CONFIG``, ``broker --bind ...``).
        env: Its environment.
        stderr_path: Where its stderr goes (read for diagnostics).
        stop_timeout: Seconds it gets to exit after a signal, and to be reaped.
        command: What runs ARGS; ``python -m minos.networks`` by default.
        cwd: Its working directory; the test's by default.
    """

    def __init__(self, args, *, env, stderr_path, stop_timeout=15.0, command=None, cwd=None):
        self.stderr_path = stderr_path
        self.stop_timeout = stop_timeout
        with stderr_path.open("w") as stderr:
            self.popen = subprocess.Popen(
                [*(command or [sys.executable, "-m", "minos.networks"]), *map(str, args)],
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        self.lines = queue.Queue()
        self.seen = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def wait_line(self, prefix, timeout, *, where=lambda line: True):
        """The next line starting with ``prefix`` (and passing ``where``); fails after ``timeout`` s or at the end."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line within {timeout} s: {self.diagnostics()}") from None
            if line is None:
                raise AssertionError(f"the output ended without a {prefix!r} line: {self.diagnostics()}")
            self.seen.append(line)
            if line.startswith(prefix) and where(line):
                return line

    def stop(self, signum=signal.SIGTERM):
        """Send ``signum`` and return the exit code (bounded)."""
        self.popen.send_signal(signum)
        return self.popen.wait(self.stop_timeout)

    def stderr(self):
        return self.stderr_path.read_text()

    def diagnostics(self):
        return f"stdout {self.seen[-5:]!r}, stderr {self.stderr()[-2000:]!r}"

    def reap(self):
        """Kill the process if it still runs, and collect it."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(self.stop_timeout)
        self._reader.join(self.stop_timeout)
        self.popen.stdout.close()


@pytest.fixture
def zmq_context():
    """A context of the test's own, terminated at teardown (every socket must be closed by then)."""
    context = zmq.Context()
    yield context
    context.term()


async def welcome_peer(router) -> bytes:
    """Play a broker on ``router`` (a zmq.asyncio ROUTER socket): answer a client's HELLO, its first frame,
    with WELCOME (heartbeats every second); return the client's routing id."""
    from minos.networks.transports.wire import PROTOCOL_VERSION, WELCOME_HEAD

    peer, command, _ = await router.recv_multipart()
    assert command == b"HELLO"
    await router.send_multipart([peer, b"WELCOME", WELCOME_HEAD.pack(PROTOCOL_VERSION, 1000)])
    return peer


IPC_PATH_LIMIT = 100  # bytes; the kernel's limit for a unix socket path is 107


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket paths fit the ipc limit: tmp_path when short enough, else one of its own."""
    if len(str(tmp_path / "broker.sock")) <= IPC_PATH_LIMIT:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="minos-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
