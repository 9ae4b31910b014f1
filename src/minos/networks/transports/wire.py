"""The wire protocol between ``ZmqConnection`` and ``BrokerServer``, and the socket helpers both ends use.

Wire protocol, version 2
------------------------

Every message is a ZeroMQ multipart message. A client's DEALER sends ``[command, args...]``; the
broker's ROUTER sees ``[routing id, command, args...]`` and answers with the routing id first (the
frames below omit it). Integers are fixed-width big-endian ``struct`` fields: ``B`` 1 byte, ``H`` 2,
``I`` 4, ``Q`` 8. Groups and topics are non-empty UTF-8; bodies are opaque bytes (``protocol.frames``)::

    client -> broker
      HELLO    >H version                                       answered by WELCOME
      SUB      >QIB request id, window, transient; group; topic; topic ...   answered by SUBOK
      PUB      records, one after the other in one frame, each:
               >QBHI sequence, strategy (0 unicast, 1 multicast), topic length, body length; topic; body
               and, from version 2, optionally a second frame of acknowledgements to apply once the
               records are handled: >QQ * n, (sequence, tag) each: the delivery ``tag`` is acknowledged
               if ``sequence`` is 0, or is one of this frame's records and the broker accepted it
      ACK      >Q * n: the tags of handled deliveries
      HB       (nothing): heartbeat
      BYE      (nothing): closing; requeue what I hold unacknowledged, now
    broker -> client
      WELCOME  >HI version, heartbeat interval in milliseconds
      SUBOK    >Q request id: the subscription is registered
      PUBOK    >Q * n: the sequences accepted since the last answer
      PUBNO    >Q * n: the sequences refused because the broker is full: retry after a backoff
      MSG      records, one after the other in one frame, each:
               >QBHI tag, redelivered (0 or 1), topic length, body length; topic; body
      HB       (nothing): heartbeat
      RESET    (nothing): the broker does not know this peer (it restarted, or declared the peer
               lost): connect again with a new routing id, HELLO, SUB again, resend what is unaccepted

Rules:

- A peer (a routing id) exists from its HELLO until its BYE or its loss. Anything else from an unknown
  peer is ignored and answered by one RESET per batch. A second HELLO starts the peer afresh.
- Several messages travel in one PUB or MSG frame when the sender has several to send (a busy peer
  pays one ZeroMQ message per batch, not per message); an idle one sends each at once.
- Acknowledgements ride on a PUB when one goes anyway: a client's pending ACK costs no frame of its own
  then, and a dispatcher's reply carries the acknowledgement of the request it answers (its pair names
  the reply's sequence), so the request is acknowledged exactly when its reply is accepted, in one frame
  and one broker turn. A pair whose record was refused (PUBNO) is not applied: it comes again with the
  record's resend. Tags belong to a session: pairs of an earlier session are not sent again.
- Versions: a broker accepts a HELLO of version 1 or 2 and answers WELCOME with the version the peer
  said (a version 1 client never sends the acknowledgements frame); a client accepts only its own.
- The broker handles a peer's frames in order and answers every PUB record exactly once, in PUBOK or
  PUBNO (one frame each per batch). Once it refuses a sequence, it refuses every later sequence of the
  same peer until that sequence comes again; the client resends the refused ones, in order, once every
  sent PUB has its answer. So messages of one publisher keep their order even under backpressure.
- MSGs to a peer never exceed the window of its first SUB unacknowledged (the routing table's credit).
  What a peer held unacknowledged goes back to its group when the peer says BYE or is lost.
- Liveness: the broker sends HB to every peer once a heartbeat interval and declares a peer silent for
  three intervals lost. A client sends HB when it has sent nothing for an interval and declares the
  broker lost after three intervals of silence (then it reconnects, as after RESET). A send to a peer
  whose connection is gone fails (``ROUTER_MANDATORY``) and loses the peer at once.
- A malformed frame (unknown command, wrong frame count, bad integer, a group or topic that is not
  UTF-8, a HELLO of another protocol version) is counted, logged at most once a second, and ignored, on
  both sides: a HELLO of another version gets no WELCOME, so its sender never becomes a peer. A peer that sends ``MALFORMED_CUTOFF`` malformed frames within
  ``MALFORMED_WINDOW`` seconds is forgotten by the broker, as if lost.
- Limits: a message body is at most ``max_frame_size`` bytes (16 MiB by default), refused by the sender
  with ``FrameEncodeError``. As a backstop, both sockets set ``MAXMSGSIZE`` to ``frame_limit()``: libzmq
  drops the connection of a peer that sends a larger frame, before reading it, and other peers go on.
- Security: with CURVE (``security``), tcp and ipc links are encrypted and the broker admits only
  allow-listed client keys; inproc links stay plain.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator, Sequence
from typing import Final

import zmq

from ..exceptions import FrameEncodeError

__all__ = [
    "ACK",
    "BATCH",
    "BROKER_VERSIONS",
    "BYE",
    "CLIENT_COMMANDS",
    "FLUSH_EVERY",
    "HB",
    "HELLO",
    "HELLO_HEAD",
    "LOST_AFTER",
    "MALFORMED_CUTOFF",
    "MALFORMED_WINDOW",
    "MSG",
    "PROTOCOL_VERSION",
    "PUB",
    "PUBNO",
    "PUBOK",
    "RECORDS_FRAME_BYTES",
    "RECORD_HEAD",
    "RESET",
    "SUB",
    "SUBOK",
    "SUBOK_HEAD",
    "SUB_HEAD",
    "WELCOME",
    "WELCOME_HEAD",
    "LogLimiter",
    "Wakeup",
    "check_body_size",
    "frame_limit",
    "iter_records",
    "pack_u64s",
    "readable",
    "recv_parts",
    "send_parts",
    "unpack_ack_pairs",
    "unpack_u64s",
]

PROTOCOL_VERSION: Final = 2
"""The version this release's clients speak (HELLO) and expect back (WELCOME)."""
BROKER_VERSIONS: Final = frozenset({1, 2})
"""The versions a broker accepts in a HELLO: version 1 clients keep working against a version 2 broker."""

HELLO: Final = b"HELLO"
WELCOME: Final = b"WELCOME"
SUB: Final = b"SUB"
SUBOK: Final = b"SUBOK"
PUB: Final = b"PUB"
PUBOK: Final = b"PUBOK"
PUBNO: Final = b"PUBNO"
MSG: Final = b"MSG"
ACK: Final = b"ACK"
HB: Final = b"HB"
BYE: Final = b"BYE"
RESET: Final = b"RESET"

HELLO_HEAD: Final = struct.Struct(">H")
WELCOME_HEAD: Final = struct.Struct(">HI")
SUB_HEAD: Final = struct.Struct(">QIB")
SUBOK_HEAD: Final = struct.Struct(">Q")
RECORD_HEAD: Final = struct.Struct(">QBHI")
"""The head of a PUB or MSG record: sequence or tag, strategy or redelivered, topic and body lengths."""

_NOBLOCK: Final = int(zmq.NOBLOCK)  # plain ints: pyzmq's flag enums cost more than the send itself
_MORE: Final = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
_POLLIN: Final = int(zmq.POLLIN)
_send = zmq.backend.Socket.send
"""pyzmq's own send, under the ``zmq.Socket.send`` wrapper that only adds the ``routing_id`` and ``group``
options (draft sockets): that wrapper is a Python call per frame, about 3,000 instructions."""

LOST_AFTER: Final = 3
"""A peer silent for this many heartbeat intervals is lost, both ways."""

BATCH: Final = 10_000
"""At most this many frames are drained, or deliveries taken, before the loop yields."""

FLUSH_EVERY: Final = 32
"""A connection sends what piled up (replies and other publishes made by its handlers, acknowledgements)
after every this many deliveries it handles in a row, instead of once the whole burst is handled. The
broker and the processes after it then work on the start of a burst while the rest is still being
handled here, rather than the burst moving through the processes as one clump with one process busy at a
time. Measured (request-reply, 100 in flight, 3 x 20,000): 17.5k -> 21.6k requests/s, the three processes
busy 1.1 -> 1.6 cores; broker-events (3 x 50,000): 56k -> 71-75k events/s at the same CPU per event.
Every 8 cost more CPU per message than it gained; 128 was too many to split 100-message bursts. Doing
the same for a burst of publishes (flushing every N unsent) made broker-events slower at 32 and 256:
the broker then pays for many small frames. An idle connection still sends each message at once."""

MALFORMED_CUTOFF: Final = 100
MALFORMED_WINDOW: Final = 10.0
"""The broker forgets a peer that sends ``MALFORMED_CUTOFF`` malformed frames within this many seconds."""

RECORDS_FRAME_BYTES: Final = 256 * 1024
"""A PUB or MSG frame takes records up to about this size (the record that reaches it is the last)."""


def frame_limit(max_frame_size: int) -> int:
    """The largest frame a peer may send when bodies are at most ``max_frame_size``: for ``MAXMSGSIZE``.

    That is a full PUB or MSG frame plus one more record of the largest body and topic.
    """
    return RECORDS_FRAME_BYTES + RECORD_HEAD.size + 0xFFFF + max_frame_size


def check_body_size(topic: str, body: bytes, max_frame_size: int) -> None:
    """Raise ``FrameEncodeError`` for a message body over ``max_frame_size`` bytes."""
    if len(body) > max_frame_size:
        raise FrameEncodeError(
            f"the message body to {topic!r} is {len(body)} bytes, over the max_frame_size of "
            f"{max_frame_size} bytes; send less, or raise max_frame_size on every client and the broker"
        )


def send_parts(socket: zmq.Socket[bytes], parts: Sequence[bytes]) -> None:
    """Send a multipart message without blocking (``zmq.Again`` when it cannot go now)."""
    send = _send
    last = len(parts) - 1
    for index, part in enumerate(parts):
        send(socket, part, _MORE if index < last else _NOBLOCK)


def recv_parts(socket: zmq.Socket[bytes]) -> list[bytes]:
    """Receive a multipart message without blocking; call it when ``readable`` said so.

    Raises:
        zmq.Again: when no message is queued.
    """
    # A frame says itself whether more parts follow: asking the socket (RCVMORE) goes through pyzmq's
    # Socket.get, which turns the option into an enum first: about 9,000 instructions per part.
    recv = socket.recv
    frame = recv(_NOBLOCK, copy=False)
    parts = [frame.bytes]
    while frame.more:
        frame = recv(_NOBLOCK, copy=False)
        parts.append(frame.bytes)
    return parts


def iter_records(frame: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """The records of a PUB or MSG frame: (sequence or tag, strategy or redelivered, topic, body).

    Raises:
        ValueError: at a record cut short or without a topic (after yielding the records before it).
    """
    unpack = RECORD_HEAD.unpack_from
    head_size = RECORD_HEAD.size
    size = len(frame)
    offset = 0
    while offset < size:
        if offset + head_size > size:
            raise ValueError(f"the record at byte {offset} is cut short")
        number, flag, topic_size, body_size = unpack(frame, offset)
        start = offset + head_size
        offset = start + topic_size + body_size
        if offset > size or not topic_size:
            raise ValueError(f"the record at byte {start - head_size} is cut short or has no topic")
        yield number, flag, frame[start : start + topic_size], frame[start + topic_size : offset]


def pack_u64s(values: Sequence[int]) -> bytes:
    """Pack sequence numbers or tags into one frame of big-endian 8-byte integers."""
    return struct.pack(f">{len(values)}Q", *values)


def unpack_u64s(frame: bytes) -> tuple[int, ...]:
    """Read a frame written by ``pack_u64s``; raises ``struct.error`` when its length is not a multiple of 8."""
    count, rest = divmod(len(frame), 8)
    if rest or not count:
        raise struct.error(f"a list of 8-byte integers cannot be {len(frame)} bytes long")
    return struct.unpack(f">{count}Q", frame)


def unpack_ack_pairs(frame: bytes) -> list[tuple[int, int]]:
    """Read the acknowledgements frame of a PUB: (sequence, tag) pairs; raises ``struct.error`` unless it
    holds whole pairs."""
    values = unpack_u64s(frame)
    if len(values) % 2:
        raise struct.error(
            f"the acknowledgements of a PUB are (sequence, tag) pairs, got {len(values)} integers"
        )
    return list(zip(values[::2], values[1::2], strict=True))


def readable(socket: zmq.Socket[bytes]) -> bool:
    """Whether frames wait in ``socket``; also re-arms its edge-triggered FD for the next wait.

    Check it before each ``recv_parts`` of a drain rather than receiving until ``zmq.Again``: a failed
    receive builds an exception (about 26,000 instructions with pyzmq's errno enum), this check none.
    The socket's FD only signals changes: after receiving or sending, this says whether frames are
    still queued, and waiting on the FD without asking could wait for nothing.
    """
    # zmq_poll with a timeout of 0 reads ZMQ_EVENTS as getsockopt does, which is what re-arms the FD,
    # for a quarter of the instructions of pyzmq's Socket.get (an enum lookup per call) and one poll().
    return bool(zmq.zmq_poll([(socket, _POLLIN)], 0))


CLIENT_COMMANDS: Final = frozenset({HELLO, SUB, PUB, ACK, HB, BYE})
"""The commands a client may send; the others only the broker sends."""


class Wakeup:
    """Lets one task sleep until woken or until a timeout; the loop-thread half of an I/O loop.

    ``set`` may be called any number of times from the loop thread, also while nobody waits: the next
    ``wait`` then returns at once, so a wake-up is never lost.

    One timer serves every ``wait``: it stays armed while it fires no later than the deadline asked
    for, and is armed anew only when a wait needs it earlier. A timer per wait (created, then
    cancelled when the socket wakes the task first, as it nearly always does) cost about 18,500
    instructions in uvloop, several times per message at low load. The price is that a ``wait`` may
    return early, at a deadline an earlier wait asked for: the I/O loops check their clocks after
    every wake-up anyway, and their deadlines (heartbeats) only move later while traffic flows, so
    that happens about once per heartbeat interval.
    """

    __slots__ = ("_future", "_loop", "_pending", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None
        self._pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # in loop.time(), while _timer is armed

    def set(self) -> None:
        """Wake the waiter (loop thread only)."""
        future = self._future
        if future is None:
            self._pending = True
        elif not future.done():
            future.set_result(None)

    async def wait(self, delay: float) -> None:
        """Return when ``set`` is called, or after ``delay`` seconds (or earlier: see the class)."""
        if self._pending or delay <= 0:
            self._pending = False
            return
        loop = self._loop
        deadline = loop.time() + delay
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._expired)
            self._timer_at = deadline
        future = self._future = loop.create_future()
        try:
            await future
        finally:
            self._future = None
            self._pending = False

    def close(self) -> None:
        """Cancel the timer, if armed (when the loop that waits is done with this wake-up)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        self.set()


class LogLimiter:
    """Says whether to log now: at most once per ``interval`` seconds, so a flood cannot flood the log."""

    __slots__ = ("_next", "interval")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0

    def __call__(self) -> bool:
        """Whether a line may be logged now (and if so, the next one only after ``interval``)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True
