"""The ZeroMQ broker: one ROUTER socket driving a ``RoutingTable``, speaking the protocol of ``wire``.

How it serves (see ``wire`` for what travels): one task of the broker's event loop owns the socket. It
drains every frame already queued (up to ``BATCH``) without blocking, handles the whole batch against
the routing table, sends the batch's answers and deliveries (one MSG frame per peer), and only then
waits once, on the socket's file descriptor, a timer or ``stop()``. Without CURVE, such a turn runs
right in the I/O callback of the socket's file descriptor when that one signals (``_on_readable``).

Defences: the ROUTER's ``MAXMSGSIZE`` makes libzmq drop the connection of a peer sending a frame over
``wire.frame_limit(max_frame_size)`` before reading it; a peer sending ``MALFORMED_CUTOFF`` malformed frames
within ``MALFORMED_WINDOW`` seconds is forgotten, as if lost; with CURVE (``security.CurveGuard``) only
allow-listed client keys get through the handshake, and the guard's sockets are served by the same loop.

Beside it: ``broker_binding`` readies the socket (options, CURVE, endpoints), ``broker_peers.BrokerPeers``
remembers each peer (last heard from, blocked, malformed frames), ``broker_outbox.BrokerOutbox`` sends a
turn's answers and deliveries, and ``broker_stats`` holds what ``stats`` answers. The five modules log as
one logger, ``minos.networks.transports.broker``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import zmq

from ..protocol import DEFAULT_MAX_FRAME_SIZE
from .broker_binding import BrokerBindError, bind_router, prepare_router, secure_router
from .broker_outbox import BrokerOutbox
from .broker_peers import BrokerPeers
from .broker_stats import BrokerStats
from .routing import RoutingTable
from .security import CurveGuard, CurveServer
from .wire import (
    ACK,
    BATCH,
    BROKER_VERSIONS,
    BYE,
    CLIENT_COMMANDS,
    HB,
    HELLO,
    HELLO_HEAD,
    PUB,
    PUBNO,
    PUBOK,
    RESET,
    SUB,
    SUB_HEAD,
    SUBOK,
    SUBOK_HEAD,
    WELCOME,
    WELCOME_HEAD,
    Wakeup,
    iter_records,
    pack_u64s,
    readable,
    recv_parts,
    unpack_ack_pairs,
    unpack_u64s,
)

__all__ = ["BrokerBindError", "BrokerServer", "BrokerStats"]

logger = logging.getLogger("minos.networks.transports.broker")  # one name for the broker's modules

_CLOSE_LINGER_MS: Final = 200
_MAX_CHECKED_TOPICS: Final = 100_000  # published topics known to be UTF-8; forgotten all at once beyond it


class BrokerServer:
    """The broker: routes messages between the peers connected to its ROUTER socket.

    Run it with ``await server.run()`` in an event loop of its own thread or process; the socket is
    created, used and closed in that loop only. ``stop()`` may be called from any thread.

    Args:
        endpoints: Where to bind: ``inproc://name``, ``ipc:///path``, ``tcp://host:port``; port 0 picks
            a free port (read the real one from ``endpoints`` once started).
        context: The ZeroMQ context; ``inproc`` clients must use the same one. Defaults to the
            process's shared ``zmq.Context.instance()``.
        max_messages: How many messages may be queued or in flight at once; beyond it publishers are
            refused and slowed down.
        heartbeat_interval: Seconds between heartbeats; a peer silent for three intervals is lost and
            what it held unacknowledged is delivered again.
        curve: The broker's CURVE keys and the client keys it admits; its tcp and ipc endpoints then
            take only those clients, encrypted (inproc ones stay plain). None serves everyone in plain.
            One CURVE broker per context: its ZAP authenticator is the context's.
        max_frame_size: The largest message body peers may send; a peer sending a frame larger than
            ``wire.frame_limit`` of it is disconnected by libzmq (the others are not affected).

    Raises:
        ValueError: when no endpoint is given, or a number is out of range.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        context: zmq.Context[Any] | None = None,
        max_messages: int = 1_000_000,
        heartbeat_interval: float = 1.0,
        curve: CurveServer | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        requested = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not requested:
            raise ValueError(
                "a broker needs at least one endpoint to bind, got none; pass e.g. 'tcp://*:5555'"
            )
        if not heartbeat_interval > 0:
            raise ValueError(
                f"heartbeat_interval must be a positive number of seconds, got {heartbeat_interval!r}"
            )
        if max_frame_size < 1:
            raise ValueError(f"max_frame_size must be a positive number of bytes, got {max_frame_size!r}")
        self._requested = requested
        self._curve = curve
        self.max_frame_size = max_frame_size
        self._guard: CurveGuard | None = None
        self._context: zmq.Context[Any] = context if context is not None else zmq.Context.instance()
        self._table = RoutingTable(max_messages=max_messages)
        self.heartbeat_interval = heartbeat_interval
        self._endpoints: list[str] = []
        self._lock = threading.Lock()  # guards _loop, _waker and _stop_requested, shared with stop()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: Wakeup | None = None
        self._stop_requested = False
        self._running = False
        self._started = threading.Event()
        self._socket: zmq.Socket[bytes] | None = None
        self._peers = BrokerPeers(self._table)
        self._outbox = BrokerOutbox(self._table, self._peers)
        self._serving = False  # a turn runs (in the task or in _on_readable): the other one waits
        self._accepted: dict[bytes, list[int]] = {}  # peer -> sequences published, for the batch's PUBOK
        self._refused: dict[bytes, list[int]] = {}  # peer -> sequences refused, for the batch's PUBNO
        self._ignored = 0
        self._checked_topics: set[bytes] = set()  # published topics already found to be UTF-8
        # What a known peer may send, and the method handling it: one lookup per frame in the loop.
        self._commands: dict[bytes, Callable[[bytes, list[bytes], float], None]] = {
            PUB: self._publish,
            ACK: self._ack,
            HB: self._heartbeat,
            SUB: self._subscribe,
            BYE: self._bye,
            HELLO: self._hello,
        }

    # Questions ------------------------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """The endpoints actually bound (a random tcp port resolved), once ``run`` has started."""
        return list(self._endpoints)

    @property
    def last_endpoint(self) -> str:
        """The last endpoint bound, as ZeroMQ reports it (``tcp://127.0.0.1:43215``).

        Raises:
            RuntimeError: when the broker has not bound anything yet.
        """
        if not self._endpoints:
            raise RuntimeError(
                f"the broker for {self._requested!r} has bound nothing yet; wait_started() first"
            )
        return self._endpoints[-1]

    @property
    def stats(self) -> BrokerStats:
        """The counters now; readable from any thread (the figures may be a moment apart)."""
        table = self._table.stats
        peers = self._peers
        return BrokerStats(
            published=table.published,
            refused=table.refused,
            delivered=table.delivered,
            acknowledged=table.acknowledged,
            redelivered=table.redelivered,
            unknown_acks=table.unknown_acks,
            discarded=table.discarded,
            size=self._table.size,
            peers=len(peers.seen),
            lost_peers=peers.lost,
            malformed=peers.malformed,
            ignored=self._ignored,
            cut_off_peers=peers.cut_off,
            refused_handshakes=self._guard.refused if self._guard is not None else 0,
        )

    def queue_depths(self) -> list[tuple[str, str, int]]:
        """``(topic, group, queued)`` of every queue now (see ``RoutingTable.depths``); from any thread."""
        return [
            (topic.decode(errors="replace"), group.decode(errors="replace"), queued)
            for topic, group, queued in self._table.depths()
        ]

    def wait_started(self, timeout: float) -> bool:
        """Block the calling thread until ``run`` has bound every endpoint, or has ended, or ``timeout``.

        Returns:
            Whether the broker is bound and serving.
        """
        self._started.wait(timeout)
        return self._running and len(self._endpoints) == len(self._requested)

    # Life cycle -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run`` to close its socket and return; callable from any thread, idempotent."""
        with self._lock:
            self._stop_requested = True
            loop, waker = self._loop, self._waker
        if loop is not None and waker is not None:
            try:
                loop.call_soon_threadsafe(waker.set)
            except RuntimeError:
                pass  # the loop is closed: run() has returned already

    async def run(self) -> None:
        """Bind, then serve until ``stop()`` or cancellation; the socket is closed on the way out.

        Raises:
            BrokerBindError: when an endpoint cannot be bound.
            RuntimeError: when this broker is already running.
        """
        if self._running or self._socket is not None or self._endpoints:
            raise RuntimeError(
                f"the broker for {self._requested!r} has run already; a BrokerServer runs once"
            )
        loop = asyncio.get_running_loop()
        socket: zmq.Socket[bytes] = self._context.socket(zmq.ROUTER)
        self._socket = socket
        fds: list[int] = []
        try:
            prepare_router(socket, max_frame_size=self.max_frame_size)
            self._guard, guard_fds = secure_router(socket, self._context, self._curve, self._requested)
            bind_router(socket, self._requested, self._endpoints)  # each bound endpoint shows at once
            waker = Wakeup(loop)
            with self._lock:
                self._loop, self._waker = loop, waker
                stop_requested = self._stop_requested
            self._running = True
            self._started.set()
            logger.info("broker serving on %s", ", ".join(self._endpoints))
            if stop_requested:
                return
            fds = [socket.fileno(), *guard_fds]
            loop.add_reader(fds[0], self._on_readable, socket, waker)
            for fd in guard_fds:
                loop.add_reader(fd, waker.set)
            await self._serve(socket, waker)
        finally:
            for fd in fds:
                loop.remove_reader(fd)
            if self._guard is not None:
                self._guard.close()
            with self._lock:
                if self._waker is not None:
                    self._waker.close()
                self._loop = self._waker = None
            self._running = False
            self._started.set()  # a waiter must not wait for a start that failed
            self._socket = None
            self._peers.seen.clear()
            socket.close(linger=_CLOSE_LINGER_MS)
            logger.info("broker on %s stopped", ", ".join(self._endpoints) or self._requested)

    # The loop -------------------------------------------------------------------------------------------

    async def _serve(self, socket: zmq.Socket[bytes], waker: Wakeup) -> None:
        monotonic = time.monotonic
        interval = self.heartbeat_interval
        next_tick = monotonic() + interval
        guard = self._guard
        outbox = self._outbox
        while not self._stop_requested:
            if guard is not None:
                await guard.pump()  # ZAP requests first: a handshake waits for their answers
            now = monotonic()
            self._serving = True
            try:
                busy = self._turn(socket, now)
                if now >= next_tick:
                    outbox.sent = False
                    self._tick(socket, now)
                    next_tick = now + interval
                    busy = busy or (outbox.sent and readable(socket))
            finally:
                self._serving = False
            if busy:
                await asyncio.sleep(0)  # let stop() and the other tasks of this loop in
                continue
            await waker.wait(next_tick - monotonic())

    def _turn(self, socket: zmq.Socket[bytes], now: float) -> bool:
        """Drain what is queued, handle it, send what it produced; return whether to go again at once."""
        batch: list[list[bytes]] = []
        while len(batch) < BATCH and readable(socket):
            batch.append(recv_parts(socket))
        if batch:
            self._handle(batch, now)
        outbox = self._outbox
        outbox.sent = False
        busy = outbox.flush(socket)
        # The socket's FD only signals changes: the drain stopped at a readable() that said no (which
        # re-armed it), but a send since may have taken in what it signalled, so ask again before
        # waiting on the FD, which would then wait for nothing.
        return busy or len(batch) == BATCH or (outbox.sent and readable(socket))

    def _on_readable(self, socket: zmq.Socket[bytes], waker: Wakeup) -> None:
        """The socket's FD signalled: serve a turn here, in the loop's I/O callback, not in the task.

        Waking the serving task for it cost a future, a loop turn and a task step per inbound frame
        that arrives alone (at one request in flight, each PUB and ACK). The task keeps the rest: CURVE
        handshakes (a ZAP answer is awaited), heartbeats, stop, a turn that found more to do at once,
        and a turn that raised (logged here, then met again by the task, which ends run() as before).
        """
        if self._serving or self._stop_requested or self._guard is not None:
            waker.set()
            return
        self._serving = True
        try:
            busy = self._turn(socket, time.monotonic())
        except Exception:
            logger.exception(
                "a turn of the broker on %s failed; its serving task takes over", self._endpoints
            )
            waker.set()
            return
        finally:
            self._serving = False
        if busy:
            waker.set()

    def _handle(self, batch: list[list[bytes]], now: float) -> None:
        seen = self._peers.seen
        commands = self._commands
        reset: set[bytes] = set()
        for frames in batch:
            if len(frames) < 2:
                self._peers.malformed_frame(frames, "no command frame")
                continue
            peer = frames[0]
            if peer not in seen:
                self._from_unknown_peer(peer, frames, now, reset)
                continue
            seen[peer] = now
            handler = commands.get(frames[1])
            if handler is None:
                self._peers.malformed_frame(frames, "unknown command or one only the broker sends")
            else:
                handler(peer, frames, now)
        replies = self._outbox.receipts
        accepted, refused = self._accepted, self._refused
        for peer, sequences in accepted.items():
            replies.append([peer, PUBOK, pack_u64s(sequences)])
        for peer, sequences in refused.items():
            replies.append([peer, PUBNO, pack_u64s(sequences)])
        accepted.clear()
        refused.clear()

    def _from_unknown_peer(self, peer: bytes, frames: list[bytes], now: float, reset: set[bytes]) -> None:
        """Handle a frame of a peer that has not said HELLO (or was forgotten): RESET tells it to."""
        command = frames[1]
        if command == HELLO:
            self._hello(peer, frames, now)
        elif command in CLIENT_COMMANDS:
            self._ignored += 1
            if command != BYE and peer not in reset:
                reset.add(peer)
                self._outbox.replies.append([peer, RESET])
        else:
            self._peers.malformed_frame(frames, "unknown command")

    # The commands of a known peer: each handler takes the peer, its frames and the batch's time. --------

    def _publish(self, peer: bytes, frames: list[bytes], now: float) -> None:
        try:
            if len(frames) != 3 and len(frames) != 4:
                raise struct.error("PUB takes one frame of records and maybe one of acknowledgements")
            pairs = unpack_ack_pairs(frames[3]) if len(frames) == 4 else ()
        except struct.error as exc:
            self._peers.malformed_frame(frames, str(exc))
            return
        before = len(self._accepted.get(peer, ())) if pairs else 0  # the frame's first answer, if needed
        self._publish_records(peer, frames)
        if pairs:  # applied once the records are handled, each if its record was accepted (or is 0)
            taken = set(self._accepted.get(peer, ())[before:])
            self._table.ack(peer, [tag for sequence, tag in pairs if not sequence or sequence in taken])

    def _publish_records(self, peer: bytes, frames: list[bytes]) -> None:
        publish = self._table.publish
        blocked = self._peers.blocked
        checked = self._checked_topics
        accepted = self._accepted
        refused = self._refused
        first_refused = blocked.get(peer)
        try:
            for sequence, strategy, topic, body in iter_records(frames[2]):
                if strategy > 1:
                    raise ValueError(f"strategy {strategy!r} is neither 0 nor 1")
                if topic not in checked:  # a set lookup per message; decoding only for a new topic
                    _check_utf8("the topic", topic)
                    if len(checked) >= _MAX_CHECKED_TOPICS:
                        checked.clear()
                    checked.add(topic)
                if (first_refused is None or sequence <= first_refused) and publish(topic, body, strategy):
                    if first_refused is not None:
                        del blocked[peer]
                        first_refused = None
                    answers = accepted.get(peer)
                    if answers is None:
                        answers = accepted[peer] = []
                else:
                    if first_refused is None:
                        blocked[peer] = first_refused = sequence
                    answers = refused.get(peer)
                    if answers is None:
                        answers = refused[peer] = []
                answers.append(sequence)
        except ValueError as exc:
            self._peers.malformed_frame(frames, f"PUB: {exc}")

    def _ack(self, peer: bytes, frames: list[bytes], now: float) -> None:
        try:
            if len(frames) != 3:
                raise struct.error("ACK takes one frame of tags")
            tags = unpack_u64s(frames[2])
        except struct.error as exc:
            self._peers.malformed_frame(frames, str(exc))
            return
        self._table.ack(peer, tags)

    def _heartbeat(self, peer: bytes, frames: list[bytes], now: float) -> None:
        pass  # the peer is alive: its time was noted on the way in, as for every frame

    def _bye(self, peer: bytes, frames: list[bytes], now: float) -> None:
        self._peers.forget(peer, lost=False)

    def _hello(self, peer: bytes, frames: list[bytes], now: float) -> None:
        if len(frames) != 3 or len(frames[2]) != HELLO_HEAD.size:
            self._peers.malformed_frame(frames, "HELLO takes one >H version frame")
            return
        (version,) = HELLO_HEAD.unpack(frames[2])
        if version not in BROKER_VERSIONS:
            # Not a peer: a client of another release is refused, and the log line says which version.
            self._peers.malformed_frame(
                frames,
                f"HELLO of wire protocol version {version}; this broker speaks versions "
                f"{', '.join(map(str, sorted(BROKER_VERSIONS)))}",
            )
            return
        self._peers.forget(peer, lost=False)  # a second HELLO starts the peer afresh
        self._peers.seen[peer] = now
        interval_ms = max(1, round(self.heartbeat_interval * 1000))
        self._outbox.replies.append([peer, WELCOME, WELCOME_HEAD.pack(version, interval_ms)])

    def _subscribe(self, peer: bytes, frames: list[bytes], now: float) -> None:
        if len(frames) < 5:
            self._peers.malformed_frame(frames, "SUB takes a head, a group and at least one topic")
            return
        try:
            request, window, transient = SUB_HEAD.unpack(frames[2])
        except struct.error:
            self._peers.malformed_frame(frames, "the SUB head is not >QIB")
            return
        group, topics = frames[3], frames[4:]
        if not group or not all(topics) or window < 1 or transient > 1:
            self._peers.malformed_frame(
                frames, "SUB needs a group, topics, a window of at least 1, transient 0 or 1"
            )
            return
        try:
            _check_utf8("the group", group)
            for topic in topics:
                _check_utf8("a topic", topic)
        except ValueError as exc:
            self._peers.malformed_frame(frames, f"SUB: {exc}")
            return
        for topic in topics:
            self._table.subscribe(peer, group, topic, window=window, transient=bool(transient))
        self._outbox.replies.append([peer, SUBOK, SUBOK_HEAD.pack(request)])

    def _tick(self, socket: zmq.Socket[bytes], now: float) -> None:
        send = self._outbox.send
        self._peers.tick(now, self.heartbeat_interval, lambda peer: send(socket, [peer, HB]))


def _check_utf8(what: str, name: bytes) -> None:
    """Raise ValueError, naming ``what``, unless ``name`` is UTF-8 (groups and topics are, on the wire)."""
    try:
        name.decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {name[:64]!r} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
