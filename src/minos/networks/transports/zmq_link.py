"""BrokerLink: a ZmqConnection's sessions with the broker, one per socket, from handshake to loss.

A session is a DEALER socket with a fresh routing id, so the broker sees a new peer; sessions are numbered
(delivery tags carry the number). Each starts with the handshake, HELLO answered by WELCOME with the
broker's protocol version and heartbeat interval, and with every subscription the connection made sent
again (SUB, answered by SUBOK). Both sides send a heartbeat (HB) after an interval of saying nothing;
when the broker goes silent for ``LOST_AFTER`` intervals, or resets the peer, the connection drops the
socket (``lose``) and the next one is made after an exponential backoff with jitter. These frames wait in
``control``, which ``flush`` sends before the session's PUB records and its one ACK frame (delivery tags
belong to a session: acknowledgements queued for an earlier one are dropped). The connection's socket task
reads the link's socket and timings directly, as they are its hot path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import zmq

from .connection import BrokerUnavailableError
from .security import CurveClient, HandshakeWatch, apply_client_keys
from .window import Publish, PublishWindow
from .wire import (
    ACK,
    HB,
    HELLO,
    HELLO_HEAD,
    LOST_AFTER,
    PROTOCOL_VERSION,
    PUB,
    RECORDS_FRAME_BYTES,
    SUB,
    SUB_HEAD,
    SUBOK_HEAD,
    WELCOME_HEAD,
    LogLimiter,
    frame_limit,
    pack_u64s,
    send_parts,
)

__all__ = ["BrokerLink"]

logger = logging.getLogger("minos.networks.transports.zmq")  # the link's lines are its connection's

_RECONNECT_FIRST: Final = 0.05  # seconds before reconnecting; doubles per failed attempt, with jitter
_RECONNECT_MAX: Final = 2.0
_SESSION_SHIFT: Final = 64  # a tag is the broker's tag plus the session number above its 64 bits


@dataclass(slots=True)
class _Subscription:
    frames: list[bytes]
    future: asyncio.Future[None] | None


class BrokerLink:
    """One ZmqConnection's current session: its socket (None between a loss and the next attempt), the
    handshake, the subscriptions and the heartbeats.

    Lives in the connection's event loop (``bind`` it there before ``connect``).

    Args:
        context: The ZeroMQ context the sockets are made in.
        endpoint: The broker's endpoint.
        curve: The CURVE keys to apply, or None (always None on inproc endpoints).
        max_frame_size: The largest message body: frames beyond ``wire.frame_limit`` of it drop the socket.
        heartbeat_interval: This side's heartbeat interval, the broker's until WELCOME says otherwise.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        *,
        curve: CurveClient | None,
        max_frame_size: int,
        heartbeat_interval: float,
    ) -> None:
        self.socket: zmq.Socket[bytes] | None = None
        self.session = -1  # one per socket; tags carry it
        self.attempts = 0  # failed in a row: back to 0 on WELCOME, up on each loss
        self.malformed = 0  # frames from the broker ignored because they break the wire protocol
        self.resets = 0  # RESETs from the broker (before the first WELCOME: it does not take our HELLO)
        self._log_malformed = LogLimiter()
        self.reconnect_at: float | None = None
        self.last_heard = self.last_sent = 0.0
        self.control: deque[list[bytes]] = deque()  # sent before publishes and acknowledgements
        self.acks: list[int] = []  # the broker's tags of this session's deliveries to acknowledge
        self._heartbeat_interval = heartbeat_interval
        self._lost_after = self._beat_every = 0.0
        self._set_broker_interval(heartbeat_interval)
        self._welcome: asyncio.Future[None] | None = None
        self._subscriptions: dict[int, _Subscription] = {}
        self._context = context
        self._endpoint = endpoint
        self._curve = curve
        self._max_frame_size = max_frame_size
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_readable: Callable[[], None] | None = None
        self._handshakes: HandshakeWatch | None = None  # while opening, on tcp and ipc endpoints

    def bind(self, loop: asyncio.AbstractEventLoop, on_readable: Callable[[], None]) -> None:
        """Watch sockets in ``loop``: ``on_readable`` is the I/O callback of their FDs."""
        self._loop, self._on_readable = loop, on_readable

    # The handshake ------------------------------------------------------------------------------------

    def watch_handshakes(self) -> None:
        """Record the security handshakes of the sockets made from now on (tcp and ipc), to explain a
        refusal in ``unanswered``."""
        if not self._endpoint.startswith("inproc://"):
            self._handshakes = HandshakeWatch()

    def stop_watching(self) -> None:
        """The broker answered (or ``open`` failed): nothing more to explain."""
        if self._handshakes is not None:
            self._handshakes.stop()
            self._handshakes = None

    async def wait_welcome(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the first session's WELCOME.

        Raises:
            BrokerUnavailableError: no WELCOME came in time (saying why if the security handshakes tell,
                a CURVE refusal, else where to look), or the broker speaks another protocol version.
        """
        assert self._loop is not None
        welcome = self._welcome = self._loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(welcome), timeout)
        except TimeoutError:
            raise self._unanswered(timeout) from None

    @property
    def opening(self) -> bool:
        """Whether ``wait_welcome`` still waits."""
        return self._welcome is not None and not self._welcome.done()

    def _unanswered(self, timeout: float) -> BrokerUnavailableError:
        refused = self._handshakes.explain(self._endpoint, self._curve) if self._handshakes else None
        if refused is not None:
            return BrokerUnavailableError(f"{refused} (waited {timeout} s)")
        if self.resets:  # it answers, but not our HELLO: what a broker of another wire version does
            return BrokerUnavailableError(
                f"the broker at {self._endpoint!r} answered but did not welcome this client within {timeout} s "
                f"(it reset the session {self.resets} times): it does not take a HELLO of wire protocol "
                f"version {PROTOCOL_VERSION}, most likely because it runs an older minos-networks release; "
                "upgrade the broker first (a broker of this release also serves older clients)"
            )
        hint = (
            "; with CURVE, also check that the broker allows this client's public key "
            f"{self._curve.keys.public.decode()!r} and that {self._curve.server_key.decode()!r} is the "
            "broker's public key (the broker logs refused handshakes)"
            if self._curve is not None
            else ""
        )
        return BrokerUnavailableError(
            f"no broker answered at {self._endpoint!r} within {timeout} s; start one "
            f"there (minos-networks broker) or check the endpoint{hint}"
        )

    def welcomed(self, head: bytes) -> None:
        """Take the broker's WELCOME: its heartbeat interval, the end of the failed attempts, and the end
        of ``wait_welcome`` (which fails if the broker speaks another protocol version).

        Raises:
            ValueError: when the WELCOME is malformed, or of another version once no one waits for it.
        """
        version, interval_ms = WELCOME_HEAD.unpack(head)
        if not interval_ms:
            raise ValueError("WELCOME gives a heartbeat interval of 0 ms")
        welcome = self._welcome
        if version != PROTOCOL_VERSION:
            error = BrokerUnavailableError(
                f"the broker at {self._endpoint!r} speaks wire protocol version {version!r}, this client "
                f"{PROTOCOL_VERSION!r}; run the same minos-networks release on both sides"
            )
            if welcome is None or welcome.done():
                raise ValueError(str(error))  # a late WELCOME: counted and logged as malformed
            welcome.set_exception(error)
            return
        self._set_broker_interval(interval_ms / 1000)
        self.attempts = 0
        if welcome is not None and not welcome.done():
            welcome.set_result(None)

    # Subscriptions --------------------------------------------------------------------------------------

    def subscribe(
        self, group: str, topics: Sequence[str], *, window: int, transient: bool
    ) -> asyncio.Future[None]:
        """Queue a subscription's SUB, sent again at the start of every session; the future resolves at its
        first SUBOK."""
        assert self._loop is not None
        future = self._loop.create_future()
        request = len(self._subscriptions) + 1
        head = SUB_HEAD.pack(request, window, transient)
        frames = [SUB, head, group.encode(), *(topic.encode() for topic in topics)]
        self._subscriptions[request] = _Subscription(frames, future)
        self.control.append(frames)
        return future

    def subscribed(self, head: bytes) -> None:
        """Take a SUBOK: its subscription's future resolves (the first time)."""
        (request,) = SUBOK_HEAD.unpack(head)
        subscription = self._subscriptions.get(request)
        if subscription is not None and subscription.future is not None:
            if not subscription.future.done():
                subscription.future.set_result(None)
            subscription.future = None

    def fail(self, closed: Callable[[], BaseException], unanswered: BaseException) -> None:
        """Fail every subscription waiting for its SUBOK with ``closed()``, and ``wait_welcome`` with
        ``unanswered``."""
        for subscription in self._subscriptions.values():
            if subscription.future is not None and not subscription.future.done():
                subscription.future.set_exception(closed())
        welcome = self._welcome
        if welcome is not None and not welcome.done():
            welcome.set_exception(unanswered)
            welcome.exception()  # retrieved: open() may be gone already

    # Sending ------------------------------------------------------------------------------------------

    @property
    def tag_base(self) -> int:
        """What a delivery's tag adds to the broker's tag: the session's number, above its 64 bits."""
        return self.session << _SESSION_SHIFT

    def ack(self, tags: Iterable[int]) -> None:
        """Queue the acknowledgement of these delivery tags; those of an earlier session are dropped (the
        broker gave their messages back to their group when that session ended)."""
        session = self.session
        if session == 0:
            self.acks.extend(tags)
        else:
            base = session << _SESSION_SHIFT
            self.acks.extend(tag - base for tag in tags if tag >> _SESSION_SHIFT == session)

    def flush(self, publishes: PublishWindow[bytes], now: float) -> bool:
        """Send what piled up on the socket (the caller checked there is one): the control frames, then
        ``publishes``' PUB records with the acknowledgements riding along (see ``wire``), or else one ACK
        frame of them; return whether anything went (or was tried)."""
        socket = self.socket
        assert socket is not None
        sent = False
        try:
            control = self.control
            while control:
                send_parts(socket, control[0])
                control.popleft()
                sent = True
            while taken := publishes.take(RECORDS_FRAME_BYTES):
                parts = [PUB, b"".join([publish.payload for publish in taken])]
                pairs = self._ack_pairs(taken)
                if pairs:
                    parts.append(pack_u64s(pairs))
                try:
                    send_parts(socket, parts)
                except zmq.Again:
                    publishes.unsend(taken)
                    raise
                self.acks.clear()
                publishes.sent(taken, now)
                sent = True
            if self.acks:
                send_parts(socket, [ACK, pack_u64s(self.acks)])
                self.acks.clear()
                sent = True
        except zmq.Again:
            sent = True  # the socket is full: the rest goes when it has room (its FD signals it)
        if sent:
            self.last_sent = now
        return sent

    def _ack_pairs(self, taken: list[Publish[bytes]]) -> list[int]:
        """The (sequence, tag) pairs, flattened, to send with ``taken``: each publish's own acknowledgement
        of this session (its sequence makes it conditional), then every queued one (sequence 0)."""
        pairs: list[int] = []
        base = self.session << _SESSION_SHIFT
        for publish in taken:
            tag = publish.ack
            if tag is not None and tag >> _SESSION_SHIFT == self.session:
                pairs += (publish.sequence, tag - base)
        for tag in self.acks:
            pairs += (0, tag)
        return pairs

    # Heartbeats -----------------------------------------------------------------------------------------

    def _set_broker_interval(self, interval: float) -> None:
        self._lost_after = LOST_AFTER * max(self._heartbeat_interval, interval)
        self._beat_every = min(self._heartbeat_interval, interval)

    def check(self, now: float) -> float | None:
        """How long the broker has been silent, if long enough to count as lost; else None, and a heartbeat
        is queued if this side said nothing for an interval."""
        silence = now - self.last_heard
        if silence > self._lost_after:
            return silence
        if now - self.last_sent >= self._beat_every:
            self.control.append([HB])
        return None

    def deadline(self, retry_at: float | None = None) -> float:
        """When the socket task must look at the link again: the next attempt, a loss or a heartbeat, or
        ``retry_at`` (when refused publishes go again) while a socket is up."""
        if self.socket is None:
            return self.reconnect_at if self.reconnect_at is not None else time.monotonic() + 1.0
        deadline = min(self.last_heard + self._lost_after, self.last_sent + self._beat_every)
        return deadline if retry_at is None else min(deadline, retry_at)

    def ignore_malformed(self, owner: object, error: Exception, frames: list[bytes]) -> None:
        """Count a frame from the broker that breaks the wire protocol; log it at most once a second."""
        self.malformed += 1
        if self._log_malformed():
            logger.warning(
                "%r ignored a malformed frame from the broker (%s): %.200r; %d malformed so far (logged "
                "at most once a second): is the broker speaking minos wire protocol version %d?",
                owner,
                error,
                frames,
                self.malformed,
                PROTOCOL_VERSION,
            )

    # Sockets --------------------------------------------------------------------------------------------

    def connect(self, now: float) -> None:
        """Make the next socket, a new peer for the broker, and start its session at ``now``: HELLO and
        every subscription's SUB go first."""
        assert self._loop is not None
        assert self._on_readable is not None
        socket: zmq.Socket[bytes] = self._context.socket(zmq.DEALER)
        try:
            socket.setsockopt(zmq.ROUTING_ID, uuid.uuid4().bytes)  # a new peer for every socket
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.SNDHWM, 0)  # bounded by max_in_flight and the window instead
            socket.setsockopt(zmq.RCVHWM, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, frame_limit(self._max_frame_size))
            if self._curve is not None:
                apply_client_keys(socket, self._curve)
            if self._handshakes is not None:
                self._handshakes.watch(socket)
            socket.connect(self._endpoint)
            fd = socket.fileno()
            self._loop.add_reader(fd, self._on_readable)
        except BaseException:
            if self._handshakes is not None:
                self._handshakes.stop()
            socket.close(linger=0)
            raise
        self.socket, self._fd = socket, fd
        self.session += 1
        self.reconnect_at = None
        self.last_heard = self.last_sent = now
        self.control = deque([[HELLO, HELLO_HEAD.pack(PROTOCOL_VERSION)]])
        self.acks.clear()  # tags of the last socket: the broker gave those messages back already
        for subscription in self._subscriptions.values():
            self.control.append(subscription.frames)

    def lose(self, now: float) -> float:
        """Drop the socket and set when the next one is made; return the seconds until then."""
        delay: float = min(_RECONNECT_MAX, _RECONNECT_FIRST * 2.0 ** min(self.attempts, 16)) * random.uniform(
            0.5, 1.0
        )
        self.attempts += 1
        self.close(0)
        self.reconnect_at = now + delay
        return delay

    def close(self, linger_ms: int) -> None:
        """Close the socket (if any), letting what it still holds go out for ``linger_ms``."""
        socket, fd = self.socket, self._fd
        if socket is None:
            return
        self.socket = self._fd = None
        if fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(fd)
        if self._handshakes is not None:
            self._handshakes.stop()  # keeps what it saw of this socket's handshakes
        socket.close(linger=linger_ms)
