"""ZmqConnection: one peer's DEALER link to a ``BrokerServer``, with heartbeats and reconnection."""

from __future__ import annotations

import asyncio
import logging
import random
import reprlib
import struct
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import zmq

from ..exceptions import FrameEncodeError
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from .connection import (
    BrokerFullError,
    BrokerUnavailableError,
    ConnectionClosedError,
    DeliveryHandler,
    Incoming,
    Strategy,
    check_message,
    check_subscription,
)
from .security import CurveClient, HandshakeWatch, apply_client_keys
from .window import PublishWindow
from .windowed import WindowedConnection
from .wire import (
    ACK,
    BATCH,
    BYE,
    FLUSH_EVERY,
    HB,
    HELLO,
    HELLO_HEAD,
    LOST_AFTER,
    MSG,
    PROTOCOL_VERSION,
    PUB,
    PUBNO,
    PUBOK,
    RECORD_HEAD,
    RECORDS_FRAME_BYTES,
    RESET,
    SUB,
    SUB_HEAD,
    SUBOK,
    SUBOK_HEAD,
    WELCOME,
    WELCOME_HEAD,
    LogLimiter,
    Wakeup,
    frame_limit,
    iter_records,
    pack_u64s,
    readable,
    recv_parts,
    send_parts,
    unpack_u64s,
)

__all__ = ["ZmqConnection"]

logger = logging.getLogger(__name__)

_RECONNECT_FIRST: Final = 0.05  # seconds before reconnecting; doubles per failed attempt, with jitter
_RECONNECT_MAX: Final = 2.0
_CLOSE_LINGER_MAX: Final = 1.0
_SESSION_SHIFT: Final = 64  # a tag is the broker's tag plus the session number above its 64 bits
_PARTS: Final = {MSG: 2, PUBOK: 2, PUBNO: 2, HB: 1, SUBOK: 2, WELCOME: 2, RESET: 1}  # command -> parts


@dataclass(slots=True)
class _Subscription:
    frames: list[bytes]
    future: asyncio.Future[None] | None


class ZmqConnection(WindowedConnection[bytes]):
    """A link to a ``BrokerServer`` over ZeroMQ (``inproc://``, ``ipc://`` or ``tcp://``).

    One task of the connection's event loop owns the socket: it drains every queued frame without
    blocking, runs ``on_delivery`` inline for each delivery, then sends what piled up (publishes, one
    frame of acknowledgements, heartbeats) and waits once. The loop must support ``add_reader`` (the
    default loops of Linux and macOS, and uvloop, do).

    When the broker goes silent for three heartbeat intervals, or answers RESET (it restarted), the
    connection reconnects with a new routing id after an exponential backoff with jitter, subscribes
    again and resends every publish not accepted yet (the same bytes: receivers filter duplicates by
    identifier). Tags of deliveries received before a reconnection are stale: acknowledging them does
    nothing, since the broker already gave those messages back to their group.

    Args:
        endpoint: The broker's endpoint, e.g. ``tcp://127.0.0.1:5555``.
        context: The ZeroMQ context; for ``inproc://`` the broker's own. Defaults to the process's
            shared ``zmq.Context.instance()``.
        on_delivery: Receives each delivered message; set before the first ``subscribe``.
        window: How many deliveries this peer may hold unacknowledged.
        max_in_flight: How many publishes may await the broker's acceptance at once; beyond it
            ``publish`` waits and ``publish_nowait`` raises ``BrokerFullError``.
        heartbeat_interval: Seconds of sending nothing before a heartbeat; the broker counts as lost
            after three intervals of silence (of this one or the broker's, whichever is longer).
        connect_timeout: Seconds ``open`` waits for the broker's answer.
        curve: This client's CURVE keys and the broker's public key, for a broker that requires CURVE;
            applied on tcp and ipc endpoints, ignored (with a log line) on inproc ones, which stay plain.
        max_frame_size: The largest message body ``publish`` sends (``FrameEncodeError`` beyond it); a
            frame from the broker larger than ``wire.frame_limit`` of it drops the link (then reconnects).

    Frames from the broker that break the wire protocol are counted (``malformed``), logged at most once
    a second, and ignored.

    Raises:
        ValueError: when a number is out of range.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        context: zmq.Context[Any] | None = None,
        on_delivery: DeliveryHandler | None = None,
        window: int = 1000,
        max_in_flight: int = 1000,
        heartbeat_interval: float = 1.0,
        connect_timeout: float = 5.0,
        curve: CurveClient | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(on_delivery=on_delivery, window=window)
        self._publishes: PublishWindow[bytes] = PublishWindow(max_in_flight)  # the payload is the PUB record
        if not heartbeat_interval > 0 or not connect_timeout > 0:
            raise ValueError(
                "heartbeat_interval and connect_timeout must be positive numbers of seconds, got "
                f"{heartbeat_interval!r} and {connect_timeout!r}"
            )
        if max_frame_size < 1:
            raise ValueError(f"max_frame_size must be a positive number of bytes, got {max_frame_size!r}")
        if curve is not None and endpoint.startswith("inproc://"):
            logger.info(
                "CURVE is not applied to %r: inproc links never leave the process and stay plain", endpoint
            )
            curve = None
        self.endpoint = endpoint
        self.curve = curve
        self.max_frame_size = max_frame_size
        self.malformed = 0
        """Frames from the broker ignored because they break the wire protocol."""
        self._log_malformed = LogLimiter()
        self.heartbeat_interval = heartbeat_interval
        self.connect_timeout = connect_timeout
        self._context: zmq.Context[Any] = context if context is not None else zmq.Context.instance()
        self._state = "new"  # new -> open -> closing -> closed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Wakeup | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._fd: int | None = None
        self._session = -1  # one per socket; tags carry it
        self._welcome: asyncio.Future[None] | None = None
        self._broker_interval = heartbeat_interval
        self._last_heard = self._last_sent = 0.0
        self._reconnect_at: float | None = None
        self._attempts = 0
        self._pumping = False
        self._finishing = False
        self._linger_ms = 0
        self._closed: asyncio.Event | None = None
        self._handshakes: HandshakeWatch | None = None  # while opening, on tcp and ipc endpoints
        self._drained: asyncio.Future[None] | None = None
        self._control: deque[list[bytes]] = deque()  # sent before publishes and acknowledgements
        self._subscriptions: dict[int, _Subscription] = {}
        self._acks: list[int] = []
        self._unflushed = 0  # deliveries handled since the last flush (see wire.FLUSH_EVERY)

    def __repr__(self) -> str:
        return f"<ZmqConnection {self.endpoint!r} {self._state}>"

    # The Connection API ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._state != "new":
            raise ConnectionClosedError(f"{self!r} was opened before; make a new connection")
        loop = self._loop = asyncio.get_running_loop()
        self._publishes.bind(loop)
        self._waker = Wakeup(loop)
        self._closed = asyncio.Event()
        if not self.endpoint.startswith("inproc://"):
            self._handshakes = HandshakeWatch()
        try:
            self._connect(time.monotonic())
        except zmq.ZMQError as exc:
            self._state = "closed"
            raise BrokerUnavailableError(
                f"cannot connect to {self.endpoint!r}: {exc.strerror}; check the endpoint's spelling "
                "(inproc://name, ipc:///path, tcp://host:port)"
            ) from exc
        welcome = self._welcome = loop.create_future()
        self._state = "open"
        self._task = loop.create_task(self._serve(), name=f"minos-zmq-connection {self.endpoint}")
        try:
            await asyncio.wait_for(asyncio.shield(welcome), self.connect_timeout)
        except BaseException as exc:
            refused = self._handshakes.explain(self.endpoint, self.curve) if self._handshakes else None
            await self._terminate()
            if isinstance(exc, TimeoutError) and refused is not None:
                raise BrokerUnavailableError(f"{refused} (waited {self.connect_timeout} s)") from None
            if isinstance(exc, TimeoutError):
                hint = (
                    "; with CURVE, also check that the broker allows this client's public key "
                    f"{self.curve.keys.public.decode()!r} and that {self.curve.server_key.decode()!r} is the "
                    "broker's public key (the broker logs refused handshakes)"
                    if self.curve is not None
                    else ""
                )
                raise BrokerUnavailableError(
                    f"no broker answered at {self.endpoint!r} within {self.connect_timeout} s; start one "
                    f"there (minos-networks broker) or check the endpoint{hint}"
                ) from None
            raise
        finally:
            if self._handshakes is not None:
                self._handshakes.stop()  # the broker answered (or open failed): nothing more to explain
                self._handshakes = None

    async def subscribe(self, group: str, topics: Sequence[str], *, transient: bool = False) -> None:
        self._check_open("subscribe")
        check_subscription(self, group, topics)
        assert self._loop is not None
        request = len(self._subscriptions) + 1
        head = SUB_HEAD.pack(request, self.window, transient)
        frames = [SUB, head, group.encode(), *(topic.encode() for topic in topics)]
        future = self._loop.create_future()
        self._subscriptions[request] = _Subscription(frames, future)
        self._control.append(frames)
        self._kick()
        await future

    def publish_nowait(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        if self._state != "open":  # the checks' own calls only when one fails: this runs per message
            self._check_open("publish")
        encoded = check_message(topic, strategy)
        if len(body) > self.max_frame_size:
            self._check_size(topic, body)
        if not self._publishes.has_room:
            raise BrokerFullError(
                f"{len(self._publishes)} publishes to {self.endpoint!r} await the broker's acceptance, the "
                f"max_in_flight of {self.max_in_flight!r}; await wait_writable() or publish() to wait for room"
            )
        publishes = self._publishes
        record = RECORD_HEAD.pack(publishes.next_sequence, strategy, len(encoded), len(body)) + encoded + body
        future = publishes.add(topic, record)
        self._kick()
        return future

    @property
    def open_timeout(self) -> float:
        return self.connect_timeout

    @property
    def connected(self) -> bool:
        # Welcomed on the current socket: _attempts goes back to 0 on WELCOME, up on each loss.
        return self._state == "open" and self._socket is not None and self._attempts == 0

    def ack(self, tags: Iterable[int]) -> None:
        if self._state != "open" and self._state != "closing":
            raise ConnectionClosedError(
                f"{self!r} cannot acknowledge {reprlib.repr(tags)}: it is not open; those messages go back to their group"
            )
        session = self._session
        if session == 0:
            self._acks.extend(tags)
        else:
            base = session << _SESSION_SHIFT
            self._acks.extend(tag - base for tag in tags if tag >> _SESSION_SHIFT == session)
        self._kick()

    async def close(self, timeout: float = 5.0) -> None:
        if self._state == "new":
            self._state = "closed"
        if self._state == "closed":
            return
        assert self._loop is not None
        assert self._closed is not None
        if self._state == "closing":
            await self._closed.wait()
            return
        self._state = "closing"
        deadline = self._loop.time() + timeout
        try:
            if not self._is_drained():
                self._drained = self._loop.create_future()
                self._kick()
                try:
                    await asyncio.wait_for(self._drained, timeout)
                except TimeoutError:
                    pass
            remaining = deadline - self._loop.time()
            self._linger_ms = round(1000 * min(_CLOSE_LINGER_MAX, max(0.0, remaining)))
            self._finishing = True
            self._kick()
        finally:
            await self._terminate(grace=max(0.1, deadline - self._loop.time()))

    async def abort(self) -> None:
        """Drop the link at once, as a crash would: no BYE, nothing more sent, pending publishes fail.

        The broker notices only by the silence or when a send to this peer fails, and then gives what
        this peer held unacknowledged back to its group. Meant for tests of failure handling.
        """
        self._linger_ms = 0
        await self._terminate()

    # Bookkeeping on the API side ------------------------------------------------------------------------

    def _check_size(self, topic: str, body: bytes) -> None:
        if len(body) > self.max_frame_size:
            raise FrameEncodeError(
                f"the message body to {topic!r} is {len(body)} bytes, over the max_frame_size of "
                f"{self.max_frame_size} bytes; send less, or raise max_frame_size on every client and the broker"
            )

    def _kick(self) -> None:
        if not self._pumping and self._waker is not None:
            self._waker.set()

    def _is_drained(self) -> bool:
        return not self._publishes and not self._acks

    async def _terminate(self, grace: float = 0.0) -> None:
        """Let the socket task end within ``grace`` seconds (else cancel it), then fail what is pending."""
        task = self._task
        if task is not None and not task.done():
            if grace > 0:
                await asyncio.wait({task}, timeout=grace)
            task.cancel()
            await asyncio.wait({task})
        self._state = "closed"
        self._close_socket(0)
        self._fail_pending()
        if self._closed is not None:
            self._closed.set()

    def _fail_pending(self) -> None:
        self._publishes.fail(self._closed_error)
        for subscription in self._subscriptions.values():
            if subscription.future is not None and not subscription.future.done():
                subscription.future.set_exception(self._closed_error(""))
        welcome = self._welcome
        if welcome is not None and not welcome.done():
            welcome.set_exception(ConnectionClosedError(f"{self!r} closed before the broker answered"))
            welcome.exception()  # retrieved: open() may be gone already

    def _closed_error(self, topic: str) -> ConnectionClosedError:
        if not topic:
            return ConnectionClosedError(f"{self!r} closed; make a new connection")
        return ConnectionClosedError(
            f"{self!r} closed before the broker accepted the message to {topic!r}; publish it again on an "
            "open connection"
        )

    # The socket task ------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        assert self._waker is not None
        wait = self._waker.wait
        monotonic = time.monotonic
        try:
            while True:
                now = monotonic()
                self._pumping = True
                try:
                    busy = self._pump(now)
                finally:
                    self._pumping = False
                if self._finishing:
                    self._send_bye()
                    return
                if busy:
                    await asyncio.sleep(0)
                else:
                    await wait(self._next_deadline() - monotonic())
        except Exception:
            logger.exception("the socket task of %r failed; the connection is closed", self)
            self._state = "closed"
            self._fail_pending()
        finally:
            self._close_socket(self._linger_ms)

    def _pump(self, now: float) -> bool:
        """Receive, handle, send; return whether there is more to do at once."""
        socket = self._socket
        if socket is None:
            if self._reconnect_at is None or now < self._reconnect_at:
                return False
            self._connect(now)
            socket = self._socket
            assert socket is not None
        received = self._receive(socket, now)
        if self._socket is not socket:
            return True  # RESET: reconnecting
        self._check_timers(socket, now)
        if self._socket is not socket:
            return False
        self._flush(socket, now)
        if self._drained is not None and not self._drained.done() and self._is_drained():
            self._drained.set_result(None)
        return received == BATCH or readable(socket)

    def _receive(self, socket: zmq.Socket[bytes], now: float) -> int:
        count = 0
        while count < BATCH:
            try:
                frames = recv_parts(socket)
            except zmq.Again:
                break
            count += 1
            command = frames[0]
            try:
                if len(frames) != _PARTS.get(command):
                    raise ValueError(f"unknown command, or {len(frames)} parts for {command[:16]!r}")
                if command == MSG:
                    self._deliver(frames[1])
                elif command == PUBOK:
                    self._publishes.accepted(unpack_u64s(frames[1]))
                elif command == PUBNO:
                    self._publishes.refused(unpack_u64s(frames[1]), now)
                elif command == HB:
                    pass
                elif command == SUBOK:
                    (request,) = SUBOK_HEAD.unpack(frames[1])
                    subscription = self._subscriptions.get(request)
                    if subscription is not None and subscription.future is not None:
                        if not subscription.future.done():
                            subscription.future.set_result(None)
                        subscription.future = None
                elif command == WELCOME:
                    self._welcomed(frames)
                elif command == RESET:
                    self._lose_broker(now, "it does not know this peer (restarted, or it declared us lost)")
                    return count
            except (ValueError, struct.error) as exc:
                self.malformed += 1
                if self._log_malformed():
                    logger.warning(
                        "%r ignored a malformed frame from the broker (%s): %.200r; %d malformed so far (logged "
                        "at most once a second): is the broker speaking minos wire protocol version %d?",
                        self,
                        exc,
                        frames,
                        self.malformed,
                        PROTOCOL_VERSION,
                    )
        if count:
            self._last_heard = now
        return count

    def _deliver(self, records: bytes) -> None:
        deliver = self.on_delivery
        if deliver is None:
            logger.error("%r got deliveries but has no on_delivery handler; they wait for redelivery", self)
            return
        base = self._session << _SESSION_SHIFT
        socket = self._socket
        for tag, redelivered, topic, body in iter_records(records):
            try:
                deliver(Incoming(base + tag, topic, body, redelivered == 1))
            except Exception:
                logger.exception("on_delivery of %r failed on a message to %r", self, topic)
            self._unflushed += 1
            if self._unflushed >= FLUSH_EVERY and socket is not None:
                # The replies and acknowledgements of the first part of a burst go now, so the broker
                # works on them while this loop handles the rest (see wire.FLUSH_EVERY).
                self._flush(socket, time.monotonic())

    def _welcomed(self, frames: list[bytes]) -> None:
        version, interval_ms = WELCOME_HEAD.unpack(frames[1])
        if not interval_ms:
            raise ValueError("WELCOME gives a heartbeat interval of 0 ms")
        if version != PROTOCOL_VERSION:
            error = BrokerUnavailableError(
                f"the broker at {self.endpoint!r} speaks wire protocol version {version!r}, this client "
                f"{PROTOCOL_VERSION!r}; run the same minos-networks release on both sides"
            )
            if self._welcome is None or self._welcome.done():
                raise ValueError(str(error))  # a late WELCOME: counted and logged as malformed
            self._welcome.set_exception(error)
            return
        self._broker_interval = interval_ms / 1000
        self._attempts = 0
        if self._welcome is not None and not self._welcome.done():
            self._welcome.set_result(None)

    def _check_timers(self, socket: zmq.Socket[bytes], now: float) -> None:
        silence = now - self._last_heard
        if silence > LOST_AFTER * max(self.heartbeat_interval, self._broker_interval):
            self._lose_broker(now, f"silent for {silence:.3f} s")
            return
        self._publishes.retry(now)
        if now - self._last_sent >= min(self.heartbeat_interval, self._broker_interval):
            self._control.append([HB])

    def _flush(self, socket: zmq.Socket[bytes], now: float) -> None:
        self._unflushed = 0
        sent = False
        try:
            control = self._control
            while control:
                send_parts(socket, control[0])
                control.popleft()
                sent = True
            publishes = self._publishes
            while taken := publishes.take(RECORDS_FRAME_BYTES):
                try:
                    send_parts(socket, [PUB, b"".join([publish.payload for publish in taken])])
                except zmq.Again:
                    publishes.unsend(taken)
                    raise
                publishes.sent(taken, now)
                sent = True
            if self._acks:
                send_parts(socket, [ACK, pack_u64s(self._acks)])
                self._acks.clear()
                sent = True
        except zmq.Again:
            sent = True  # the socket is full: the rest goes when it has room (its FD wakes the task)
        if sent:
            self._last_sent = now

    def _send_bye(self) -> None:
        if self._socket is not None:
            self._pumping = True
            try:
                self._flush(self._socket, time.monotonic())
                send_parts(self._socket, [BYE])
            except zmq.ZMQError:
                pass  # the broker finds out by the silence instead
            finally:
                self._pumping = False

    def _next_deadline(self) -> float:
        if self._socket is None:
            return self._reconnect_at if self._reconnect_at is not None else time.monotonic() + 1.0
        lost_at = self._last_heard + LOST_AFTER * max(self.heartbeat_interval, self._broker_interval)
        beat_at = self._last_sent + min(self.heartbeat_interval, self._broker_interval)
        deadline = min(lost_at, beat_at)
        retry_at = self._publishes.retry_at()
        return deadline if retry_at is None else min(deadline, retry_at)

    # Sockets --------------------------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        assert self._loop is not None
        assert self._waker is not None
        socket: zmq.Socket[bytes] = self._context.socket(zmq.DEALER)
        try:
            socket.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)  # a new peer for every socket
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.SNDHWM, 0)  # bounded by max_in_flight and the window instead
            socket.setsockopt(zmq.RCVHWM, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, frame_limit(self.max_frame_size))
            if self.curve is not None:
                apply_client_keys(socket, self.curve)
            if self._handshakes is not None:
                self._handshakes.watch(socket)
            socket.connect(self.endpoint)
            fd = socket.fileno()
            self._loop.add_reader(fd, self._waker.set)
        except BaseException:
            if self._handshakes is not None:
                self._handshakes.stop()
            socket.close(linger=0)
            raise
        self._socket, self._fd = socket, fd
        self._session += 1
        self._reconnect_at = None
        self._last_heard = self._last_sent = now
        self._control = deque([[HELLO, HELLO_HEAD.pack(PROTOCOL_VERSION)]])
        for subscription in self._subscriptions.values():
            self._control.append(subscription.frames)
        self._publishes.restart()
        self._acks.clear()  # tags of the last socket: the broker gave those messages back already

    def _lose_broker(self, now: float, why: str) -> None:
        delay = min(_RECONNECT_MAX, _RECONNECT_FIRST * 2**self._attempts) * random.uniform(0.5, 1.0)
        self._attempts += 1
        # While open() still waits for the first WELCOME, its own error tells the caller; no log line.
        opening = self._welcome is not None and not self._welcome.done()
        logger.log(
            logging.DEBUG if opening else logging.WARNING,
            "%r lost the broker: %s; reconnecting in %.3f s",
            self,
            why,
            delay,
        )
        self._close_socket(0)
        self._reconnect_at = now + delay

    def _close_socket(self, linger_ms: int) -> None:
        socket, fd = self._socket, self._fd
        if socket is None:
            return
        self._socket = self._fd = None
        if fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(fd)
        if self._handshakes is not None:
            self._handshakes.stop()  # keeps what it saw of this socket's handshakes
        socket.close(linger=linger_ms)
