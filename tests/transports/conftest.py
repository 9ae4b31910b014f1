"""Fixtures for the transport tests: ZeroMQ brokers running in background threads, each with its own loop."""

import asyncio
import struct
import threading
import uuid

import pytest
import zmq
import zmq.asyncio

from minos.networks.transports import BrokerServer, ZmqConnection

START_TIMEOUT = 5.0


class BrokerThread:
    """A BrokerServer served by ``asyncio.run`` in a thread of its own, started and stopped by handshake."""

    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"minos-test-broker-{uuid.uuid4().hex[:6]}")

    @property
    def endpoint(self) -> str:
        return self.server.last_endpoint

    def start(self) -> "BrokerThread":
        self._thread.start()
        if not self.server.wait_started(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the broker did not start within {START_TIMEOUT} s: {self.error!r}")
        return self

    def stop(self) -> None:
        self.server.stop()
        self._thread.join(START_TIMEOUT)
        assert not self._thread.is_alive(), "the broker thread did not end"
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            asyncio.run(self.server.run())
        except BaseException as error:
            self.error = error


@pytest.fixture
def broker_threads(zmq_context):
    """Start brokers in threads with ``start(endpoint, **options)``; all are stopped at teardown."""
    started: list[BrokerThread] = []

    def start(endpoint: str, **options) -> BrokerThread:
        options.setdefault("context", zmq_context)
        broker = BrokerThread(BrokerServer(endpoint, **options)).start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


INBOX_TIMEOUT = 5.0  # seconds an Inbox waits for what a test expects before failing it


class Inbox:
    """Collects a ZmqConnection's deliveries and acknowledges them; ``await arrived(n)`` or ``wait_for(body)``."""

    def __init__(self) -> None:
        self.received: list = []
        self.connection: ZmqConnection | None = None
        self._changed = asyncio.Event()

    def __call__(self, incoming) -> None:
        self.received.append(incoming)
        self.connection.ack([incoming.tag])
        self._changed.set()

    @property
    def bodies(self) -> list[bytes]:
        return [incoming.body for incoming in self.received]

    async def arrived(self, count: int, timeout: float = INBOX_TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, body: bytes, timeout: float = INBOX_TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while body not in self.bodies:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def make_inbox():
    """Builds Inboxes: ``inbox = make_inbox()``, then ``await connect(endpoint, inbox)``."""
    return Inbox


@pytest.fixture
async def connect(zmq_context):
    """Open ZmqConnections (``connect(endpoint, inbox=None, **options)``), all closed at teardown."""
    opened = []

    async def open_one(endpoint, inbox=None, **options):
        options.setdefault("heartbeat_interval", 0.05)
        connection = ZmqConnection(endpoint, context=zmq_context, on_delivery=inbox, **options)
        if inbox is not None:
            inbox.connection = connection
        opened.append(connection)
        await connection.open()
        return connection

    yield open_one
    for connection in opened:
        await connection.close(timeout=1.0)


@pytest.fixture
def async_sockets(zmq_context):
    """Make zmq.asyncio sockets on the test's context (``make(kind)``), all closed at teardown."""
    context = zmq.asyncio.Context.shadow(zmq_context.underlying)
    made = []

    def make(kind):
        socket = context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        made.append(socket)
        return socket

    yield make
    for socket in reversed(made):
        socket.close(linger=0)


RAW_PEER_TIMEOUT = 5.0


class RawPeer:
    """A DEALER speaking the wire protocol by hand, to do what ZmqConnection never does."""

    def __init__(self, context: zmq.Context, endpoint: str) -> None:
        self.socket = zmq.asyncio.Context.shadow(context.underlying).socket(zmq.DEALER)
        self.socket.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send(self, *parts: bytes) -> None:
        self.socket.send_multipart(list(parts))

    async def expect(self, command: bytes) -> list[bytes]:
        """The next message with ``command`` (heartbeats and other commands are skipped)."""
        return (await self.until(command))[-1]

    async def until(self, command: bytes) -> list[list[bytes]]:
        """Every message up to and including the next with ``command``, heartbeats left out."""
        received = []
        async with asyncio.timeout(RAW_PEER_TIMEOUT):
            while True:
                frames = await self.socket.recv_multipart()
                if frames[0] != b"HB":
                    received.append(frames)
                if frames[0] == command:
                    return received

    async def hello(self) -> None:
        self.send(b"HELLO", struct.pack(">H", 1))
        await self.expect(b"WELCOME")

    async def subscribe(self, group: bytes, topic: bytes, *, window: int = 10, request: int = 1) -> None:
        self.send(b"SUB", struct.pack(">QIB", request, window, 0), group, topic)
        assert struct.unpack(">Q", (await self.expect(b"SUBOK"))[1]) == (request,)

    def close(self) -> None:
        self.socket.close(linger=0)


@pytest.fixture
def raw_peers(zmq_context):
    peers = []

    def make(endpoint):
        peers.append(RawPeer(zmq_context, endpoint))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()
