"""ZmqConnection: one peer's DEALER link to a ``BrokerServer``, with heartbeats and reconnection.

The connection moves messages: its socket task receives deliveries and the answers to its publishes
(kept in a ``PublishWindow``), and sends what piled up. Each session with the broker, from its socket and
handshake through subscriptions and heartbeats to its loss, is ``zmq_link``'s.
"""

from __future__ import annotations

import asyncio
import logging
import reprlib
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

import zmq

from ..protocol import DEFAULT_MAX_FRAME_SIZE
from .connection import (
    BrokerFullError,
    BrokerUnavailableError,
    ConnectionClosedError,
    DeliveryHandler,
    Incoming,
    Settle,
    Strategy,
    check_message,
    check_subscription,
)
from .security import CurveClient
from .window import PublishWindow
from .windowed import WindowedConnection
from .wire import (
    BATCH,
    BYE,
    FLUSH_EVERY,
    HB,
    MSG,
    PUBNO,
    PUBOK,
    RECORD_HEAD,
    RESET,
    SUBOK,
    WELCOME,
    Wakeup,
    check_body_size,
    iter_records,
    readable,
    recv_parts,
    send_parts,
    unpack_u64s,
)
from .zmq_link import BrokerLink

__all__ = ["ZmqConnection"]

logger = logging.getLogger(__name__)

_CLOSE_LINGER_MAX: Final = 1.0
_PARTS: Final = {MSG: 2, PUBOK: 2, PUBNO: 2, HB: 1, SUBOK: 2, WELCOME: 2, RESET: 1}  # command -> parts


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
        self.heartbeat_interval = heartbeat_interval
        self.connect_timeout = connect_timeout
        self._context: zmq.Context[Any] = context if context is not None else zmq.Context.instance()
        self._state = "new"  # new -> open -> closing -> closed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Wakeup | None = None
        self._task: asyncio.Task[None] | None = None
        self._link = BrokerLink(
            self._context,
            endpoint,
            curve=curve,
            max_frame_size=max_frame_size,
            heartbeat_interval=heartbeat_interval,
        )
        self._pumping = False
        self._finishing = False
        self._linger_ms = 0
        self._closed: asyncio.Event | None = None
        self._drained: asyncio.Future[None] | None = None
        self._unflushed = 0  # deliveries handled since the last flush (see wire.FLUSH_EVERY)
        self._flush_scheduled = False  # a _flush_soon is scheduled (see _kick)

    def __repr__(self) -> str:
        return f"<ZmqConnection {self.endpoint!r} {self._state}>"

    @property
    def malformed(self) -> int:
        """Frames from the broker ignored because they break the wire protocol."""
        return self._link.malformed

    # The Connection API ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._state != "new":
            raise ConnectionClosedError(f"{self!r} was opened before; make a new connection")
        loop = self._loop = asyncio.get_running_loop()
        self._publishes.bind(loop)
        self._waker = Wakeup(loop)
        self._link.bind(loop, self._on_readable)
        self._closed = asyncio.Event()
        self._link.watch_handshakes()
        try:
            self._connect(time.monotonic())
        except zmq.ZMQError as exc:
            self._state = "closed"
            raise BrokerUnavailableError(
                f"cannot connect to {self.endpoint!r}: {exc.strerror}; check the endpoint's spelling "
                "(inproc://name, ipc:///path, tcp://host:port)"
            ) from exc
        self._state = "open"
        self._task = loop.create_task(self._serve(), name=f"minos-zmq-connection {self.endpoint}")
        try:
            await self._link.wait_welcome(self.connect_timeout)
        except BaseException:
            await self._terminate()
            raise
        finally:
            self._link.stop_watching()

    async def subscribe(self, group: str, topics: Sequence[str], *, transient: bool = False) -> None:
        self._check_open("subscribe")
        check_subscription(self, group, topics)
        future = self._link.subscribe(group, topics, window=self.window, transient=transient)
        self._kick()
        await future

    def publish_nowait(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        future = self._publishes.add(topic, self._record(topic, body, strategy))
        self._kick()
        return future

    def publish_settled(
        self, topic: str, body: bytes, strategy: Strategy, settle: Settle, ack: int | None = None
    ) -> None:
        # settle runs in the turn that reads the PUBOK (or fails the publish); ack rides in the PUB frame
        # and the broker applies it as it accepts the record (wire version 2).
        self._publishes.add_settled(topic, self._record(topic, body, strategy), settle, ack)
        self._kick()

    @property
    def open_timeout(self) -> float:
        return self.connect_timeout

    @property
    def connected(self) -> bool:
        # Welcomed on the current socket: attempts goes back to 0 on WELCOME, up on each loss.
        link = self._link
        return self._state == "open" and link.socket is not None and link.attempts == 0

    def ack(self, tags: Iterable[int]) -> None:
        if self._state != "open" and self._state != "closing":
            raise ConnectionClosedError(
                f"{self!r} cannot acknowledge {reprlib.repr(tags)}: it is not open; those messages go back to their group"
            )
        self._link.ack(tags)
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
                self._wake_task()
                try:
                    await asyncio.wait_for(self._drained, timeout)
                except TimeoutError:
                    pass
            remaining = deadline - self._loop.time()
            self._linger_ms = round(1000 * min(_CLOSE_LINGER_MAX, max(0.0, remaining)))
            self._finishing = True
            self._wake_task()
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

    def _record(self, topic: str, body: bytes, strategy: Strategy) -> bytes:
        """The next publish's PUB record, once it may be queued; raises what ``publish_nowait`` documents."""
        if self._state != "open":  # the checks' own calls only when one fails: this runs per message
            self._check_open("publish")
        encoded = check_message(topic, strategy)
        if len(body) > self.max_frame_size:
            self._check_size(topic, body)
        publishes = self._publishes
        if not publishes.has_room:
            raise BrokerFullError(
                f"{len(publishes)} publishes to {self.endpoint!r} await the broker's acceptance, the "
                f"max_in_flight of {self.max_in_flight!r}; await wait_writable() or publish() to wait for room"
            )
        return RECORD_HEAD.pack(publishes.next_sequence, strategy, len(encoded), len(body)) + encoded + body

    def _check_size(self, topic: str, body: bytes) -> None:
        check_body_size(topic, body, self.max_frame_size)

    def _kick(self) -> None:
        """Have what was just queued (a publish, acknowledgements, a SUB) sent soon: by the socket task's
        own flush while it pumps, else by one flush scheduled for the loop's next turn, which sends all
        queued until then (a reply's ACK and the next request leave together) without waking the task."""
        if self._pumping or self._flush_scheduled or self._loop is None:
            return
        self._flush_scheduled = True
        self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        socket = self._link.socket
        if socket is None or self._state != "open" or self._drained is not None:
            self._wake_task()  # reconnecting or closing: the socket task decides what goes
            return
        try:
            if self._flush(time.monotonic()) and readable(socket):
                self._wake_task()  # the send took in what the FD signalled: drain it
        except Exception:  # the socket task meets it again, and closes the connection
            logger.exception("a flush of %r failed; the socket task takes over", self)
            self._wake_task()

    def _wake_task(self) -> None:
        if self._waker is not None:
            self._waker.set()

    def _is_drained(self) -> bool:
        return not self._publishes and not self._link.acks

    async def _terminate(self, grace: float = 0.0) -> None:
        """Let the socket task end within ``grace`` seconds (else cancel it), then fail what is pending."""
        task = self._task
        if task is not None and not task.done():
            if grace > 0:
                await asyncio.wait({task}, timeout=grace)
            task.cancel()
            await asyncio.wait({task})
        self._state = "closed"
        self._link.close(0)
        self._fail_pending()
        if self._closed is not None:
            self._closed.set()

    def _fail_pending(self) -> None:
        self._publishes.fail(self._closed_error)
        self._link.fail(
            lambda: self._closed_error(""),
            ConnectionClosedError(f"{self!r} closed before the broker answered"),
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
                    await wait(self._link.deadline(self._publishes.retry_at()) - monotonic())
        except Exception:
            logger.exception("the socket task of %r failed; the connection is closed", self)
            self._state = "closed"
            self._fail_pending()
        finally:
            self._waker.close()
            self._link.close(self._linger_ms)

    def _on_readable(self) -> None:
        """The socket's FD signalled: pump here, in the loop's I/O callback, instead of waking the task.

        Waking the socket task for it cost a future, a loop turn and a task step per inbound frame at
        low load (a PUBOK, a MSG). The task keeps what needs it: reconnecting, closing, timers, a pump
        that found more to do at once, and failures (logged here, then met again by the task's pump,
        which closes the connection as before).
        """
        socket = self._link.socket
        if self._pumping or socket is None or self._state != "open" or self._drained is not None:
            self._wake_task()
            return
        self._pumping = True
        try:
            busy = self._pump(time.monotonic())
        except Exception:
            logger.exception("a pump of %r failed; its socket task takes over", self)
            self._wake_task()
            return
        finally:
            self._pumping = False
        if busy or self._link.socket is not socket:
            self._wake_task()

    def _pump(self, now: float) -> bool:
        """Receive, handle, send; return whether there is more to do at once."""
        link = self._link
        socket = link.socket
        if socket is None:
            if link.reconnect_at is None or now < link.reconnect_at:
                return False
            self._connect(now)
            socket = link.socket
            assert socket is not None
        received = self._receive(socket, now)
        if link.socket is not socket:
            return True  # RESET: reconnecting
        self._check_timers(socket, now)
        if link.socket is not socket:
            return False
        sent = self._flush(now)
        if self._drained is not None and not self._drained.done() and self._is_drained():
            self._drained.set_result(None)
        # _receive stopped at a readable() that said no, which re-armed the FD; only a send since then
        # (which may take in what the FD signalled) calls for asking again before waiting on it.
        return received == BATCH or (sent and readable(socket))

    def _receive(self, socket: zmq.Socket[bytes], now: float) -> int:
        count = 0
        while count < BATCH and readable(socket):
            frames = recv_parts(socket)
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
                    self._link.subscribed(frames[1])
                elif command == WELCOME:
                    self._link.welcomed(frames[1])
                elif command == RESET:
                    self._link.resets += 1
                    self._lose_broker(now, "it does not know this peer (restarted, or it declared us lost)")
                    return count
            except (ValueError, struct.error) as exc:
                self._link.ignore_malformed(self, exc, frames)
        if count:
            self._link.last_heard = now
        return count

    def _deliver(self, records: bytes) -> None:
        deliver = self.on_delivery
        if deliver is None:
            logger.error("%r got deliveries but has no on_delivery handler; they wait for redelivery", self)
            return
        link = self._link
        base = link.tag_base
        socket = link.socket
        for tag, redelivered, topic, body in iter_records(records):
            try:
                deliver(Incoming(base + tag, topic, body, redelivered == 1))
            except Exception:
                logger.exception("on_delivery of %r failed on a message to %r", self, topic)
            self._unflushed += 1
            if self._unflushed >= FLUSH_EVERY and socket is not None:
                # The replies and acknowledgements of the first part of a burst go now, so the broker
                # works on them while this loop handles the rest (see wire.FLUSH_EVERY).
                self._flush(time.monotonic())

    def _check_timers(self, socket: zmq.Socket[bytes], now: float) -> None:
        silence = self._link.check(now)  # queues a heartbeat when one is due
        if silence is not None:
            self._lose_broker(now, f"silent for {silence:.3f} s")
            return
        self._publishes.retry(now)

    def _flush(self, now: float) -> bool:
        """Send what piled up; return whether anything went (or was tried) on the socket."""
        self._unflushed = 0
        return self._link.flush(self._publishes, now)

    def _send_bye(self) -> None:
        socket = self._link.socket
        if socket is not None:
            self._pumping = True
            try:
                self._flush(time.monotonic())
                send_parts(socket, [BYE])
            except zmq.ZMQError:
                pass  # the broker finds out by the silence instead
            finally:
                self._pumping = False

    # Sockets --------------------------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        self._link.connect(now)
        self._publishes.restart()

    def _lose_broker(self, now: float, why: str) -> None:
        delay = self._link.lose(now)
        # While open() still waits for the first WELCOME, its own error tells the caller; no log line.
        logger.log(
            logging.DEBUG if self._link.opening else logging.WARNING,
            "%r lost the broker: %s; reconnecting in %.3f s",
            self,
            why,
            delay,
        )
