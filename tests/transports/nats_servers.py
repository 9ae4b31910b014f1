"""nats-server processes of a test's own: one server, or a three-node JetStream cluster, on free ports.

Each server keeps its JetStream store in a directory of the test's, is stopped by pid, and can be killed
(SIGKILL, as a crash would) and started again on the same ports and store. Its ports stay the test's
until ``close`` (see ``reserve_port``).
"""

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

_T = TypeVar("_T")

WAIT = 5.0  # seconds a server gets to listen after it started
CLUSTER_WAIT = 30.0  # seconds a cluster gets to elect its JetStream meta leader (two busy cores)


def reserve_port() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1, not listening: while it is open, the port is this test's.

    A port found free and let go (bind to 0, close) may be taken before nats-server binds it, on a
    restart too: it is in the ephemeral range, so the next connect() of any process may get it as its
    source port (a node dialing its routes, a client dialing a server that is down: even to that very
    port, a TCP self-connect), and another test's server may be given it. The server then fails with
    "address already in use". No connect() takes a port bound on purpose, no bind takes a bound port;
    nats-server, which binds with SO_REUSEADDR, still can, as this socket set it too and does not listen.
    """
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    return holder


class PrivateServer:
    """A nats-server with JetStream on a free port and a store of its own; stopped and started by the test,
    then closed (``close``), which lets its port go.

    Args:
        store: The JetStream store directory.
        name: The server's name (``-n``), which JetStream reports as a stream's leader.
        cluster: ``(cluster port, [route ports])`` to join a cluster; None for a lone server.
    """

    def __init__(self, store: Path, *, name: str = "", cluster: tuple[int, list[int]] | None = None) -> None:
        self.store = store
        self.name = name
        self.cluster = cluster
        self._reserved = reserve_port()
        self.port = int(self._reserved.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        command = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        if self.name:
            command += ["-n", self.name]
        if self.cluster is not None:
            port, routes = self.cluster
            command += [
                "--cluster_name", "minos-test", "--cluster", f"nats://127.0.0.1:{port}",
                "--routes", ",".join(f"nats://127.0.0.1:{route}" for route in routes),
            ]  # fmt: skip
        return command

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + WAIT
        while True:  # the server listens once it is ready: connect until it accepts, within WAIT
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=WAIT).close()
                return
            except ConnectionRefusedError:
                if self.process.poll() is not None:
                    assert self.process.stderr is not None
                    raise RuntimeError(f"nats-server exited: {self.process.stderr.read()!r}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # sync-ok: a child process's port has no event to wait on

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash or a power loss of its machine would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self._close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        self._close()

    def close(self) -> None:
        """Stop the server for good and let its port go."""
        self.stop()
        self._reserved.close()

    def _close(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


class NatsCluster:
    """Three nats-servers with JetStream clustered on localhost, each with its own store under ``root``;
    ``close`` stops them and lets their ports go."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self._reserved = [reserve_port() for _ in range(size)]
        cluster_ports = [int(holder.getsockname()[1]) for holder in self._reserved]
        self.nodes = [
            PrivateServer(
                root / f"n{index}",
                name=f"n{index}",
                cluster=(port, [other for other in cluster_ports if other != port]),
            )
            for index, port in enumerate(cluster_ports)
        ]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(node.url for node in self.nodes)

    def node(self, name: str) -> PrivateServer:
        return next(node for node in self.nodes if node.name == name)

    async def start(self) -> None:
        for node in self.nodes:
            node.start()
        await self.wait_jetstream()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        for holder in self._reserved:
            holder.close()

    async def wait_jetstream(self) -> None:
        """Return once the cluster's JetStream answers API calls (a meta leader is elected), within CLUSTER_WAIT."""

        async def answers(js: JetStreamContext) -> bool:
            await js.account_info()
            return True

        await self._poll("JetStream does not answer", answers)

    async def stream_leader(self, stream: str) -> str:
        """The name of the node leading ``stream`` now, waiting (within CLUSTER_WAIT) while it has none."""

        async def leader(js: JetStreamContext) -> str | None:
            info = await js.stream_info(stream)
            return info.cluster.leader if info.cluster is not None and info.cluster.leader else None

        return await self._poll(f"the stream {stream!r} has no leader", leader)

    async def _poll(self, what: str, probe: Callable[[JetStreamContext], Awaitable[_T | None]]) -> _T:
        """``probe``'s first answer that is not None (an error counts as none yet), within CLUSTER_WAIT."""
        urls = [node.url for node in self.nodes if node.running]
        deadline = time.monotonic() + CLUSTER_WAIT
        client = await nats.connect(urls, connect_timeout=2, allow_reconnect=False)
        try:
            js = client.jetstream(timeout=1)
            while True:
                try:
                    answer = await probe(js)
                    if answer is not None:
                        return answer
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} after {CLUSTER_WAIT} s")
                await asyncio.sleep(0.1)  # sync-ok: an election in other processes has no event to wait on
        finally:
            await client.close()
