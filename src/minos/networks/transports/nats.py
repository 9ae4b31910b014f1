"""NatsConnection: one peer's link to NATS JetStream, with the routing semantics of the ZeroMQ broker.

How the contract of ``Connection`` maps onto JetStream (see ``subjects`` for the names):

- The stream (interest retention, ``discard: new``, ``max_msgs`` = ``max_messages``) keeps a message until
  every consumer whose subject matches has acknowledged it, and refuses publishes when full: a publish
  is accepted when JetStream's PubAck says the stream stored it; a refused one is sent again, in order,
  after a backoff, so a full stream slows publishers down.
- The client reconnects forever, backing off from 50 ms to ``reconnect_max_wait`` with jitter; once
  back, it checks the stream and its consumers (creating what the server lost), renews its pull
  requests and sends again every publish not accepted yet (the same ``Nats-Msg-Id``, so JetStream
  drops the duplicates). Acknowledgements queued meanwhile go out then.

The connection keeps the link (connecting, reconnecting, the pump that sends everything) and its
publishes, in a ``PublishWindow`` as ``ZmqConnection`` does, answered by JetStream's PubAcks. What it
receives, from pull requests to acknowledgements, give-back and dead letters, is ``nats_consumers``'s; the
stream and consumers themselves are made and checked in ``jetstream``, which also retries those API calls
while a cluster elects its leaders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import reprlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ..exceptions import FrameEncodeError
from ..protocol import DEFAULT_MAX_FRAME_SIZE, FrameCodec
from ..protocol.frames import MULTICAST_CODE
from .connection import (
    BrokerFullError,
    BrokerUnavailableError,
    ConnectionClosedError,
    DeliveryHandler,
    Strategy,
    check_message,
    check_subscription,
)
from .jetstream import Restorer, connect, provision_stream
from .nats_consumers import NatsConsumers
from .subjects import MULTICAST_TOKEN, UNICAST_TOKEN, NatsSettings, subject_of
from .window import Publish, PublishWindow
from .windowed import WindowedConnection

__all__ = ["NatsConnection"]

logger = logging.getLogger(__name__)

_STREAM_FULL: Final = frozenset({10077, 10078})  # JetStream: maximum messages / bytes exceeded


@dataclass(slots=True)
class _Outgoing:
    """What goes on the link for one publish; its size is its body's."""

    subject: str
    body: bytes
    headers: dict[str, str]  # a Nats-Msg-Id, the same each time it goes: JetStream drops the copies

    def __len__(self) -> int:
        return len(self.body)


class NatsConnection(WindowedConnection[_Outgoing]):
    """A link to a NATS JetStream server (or cluster), with the semantics of ``ZmqConnection``.

    Every method runs in the event loop that called ``open``; one pump task there sends what the API
    queued (publishes, acknowledgements, pull requests), and nats-py's tasks deliver messages, which go
    to ``on_delivery`` inline.

    Args:
        settings: Servers, stream and timings (see ``NatsSettings``).
        on_delivery: Receives each delivered message; set before the first ``subscribe``.
        window: How many deliveries this peer may hold unacknowledged.
        max_in_flight: How many publishes may await JetStream's PubAck at once; beyond it ``publish``
            waits and ``publish_nowait`` raises ``BrokerFullError``.
        dead_letter_topic: Where a message goes after ``settings.max_deliveries`` unacknowledged
            deliveries; the connection keeps that topic's consumer in existence, so dead letters wait
            for ``DeadLetterQueue``. Empty: such messages are delivered again, without limit.
        max_frame_size: The largest message body ``publish`` sends (``FrameEncodeError`` beyond it, or
            beyond the server's ``max_payload``).

    Raises:
        ValueError: when a number is out of range.
    """

    _acceptor = "JetStream"

    def __init__(
        self,
        settings: NatsSettings | None = None,
        *,
        on_delivery: DeliveryHandler | None = None,
        window: int = 1000,
        max_in_flight: int = 1000,
        dead_letter_topic: str = "",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        super().__init__(on_delivery=on_delivery, window=window)
        if max_in_flight < 1 or max_frame_size < 1:
            raise ValueError(
                f"max_in_flight and max_frame_size must be at least 1, got {max_in_flight!r} and {max_frame_size!r}"
            )
        self.settings = settings if settings is not None else NatsSettings()
        self.dead_letter_topic = dead_letter_topic
        self.max_frame_size = max_frame_size
        self._state = "new"  # new -> open -> closing -> closed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready = False  # connected, and the stream and consumers checked since
        self._tasks: list[asyncio.Task[None]] = []
        self._restorer = Restorer(
            self.settings, self, is_open=lambda: self._state == "open", done=self._resumed
        )
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._drained: asyncio.Future[None] | None = None
        self._publishes: PublishWindow[_Outgoing] = PublishWindow(max_in_flight)
        self._puback_prefix = ""
        self._msg_ids = f"{uuid.uuid4().hex[:24]}-"  # the Nats-Msg-Id prefix of this connection's publishes
        self._consumers = NatsConsumers(
            self,
            self.settings,
            dead_letter_topic=dead_letter_topic,
            codec=FrameCodec(max_frame_size=max(max_frame_size, DEFAULT_MAX_FRAME_SIZE)),
            state=lambda: self._state,
            wake=self._kick,
            resume=self._start_resume,
            publish=self._enqueue,
        )

    def __repr__(self) -> str:
        return f"<NatsConnection {self.settings.stream!r} at {','.join(self.settings.servers)} {self._state}>"

    # The Connection API ---------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._state != "new":
            raise ConnectionClosedError(f"{self!r} was opened before; make a new connection")
        self._loop = asyncio.get_running_loop()
        self._publishes.bind(self._loop)
        self._state = "open"
        nc = self._nc = Client()
        try:
            await connect(
                nc,
                self.settings,
                self,
                disconnected=self._on_disconnected,
                reconnected=self._on_reconnected,
            )
            self._js = nc.jetstream(timeout=self.settings.connect_timeout)
            await provision_stream(self._js, self.settings, repr(self))
            self._puback_prefix = nc.new_inbox()
            await nc.subscribe(f"{self._puback_prefix}.*", cb=self._on_puback)
        except BaseException as error:
            await self._terminate()
            if not isinstance(error, BrokerUnavailableError) and isinstance(
                error, TimeoutError | OSError | nats.errors.Error
            ):
                raise BrokerUnavailableError(
                    f"no NATS JetStream server answered at {', '.join(self.settings.servers)} within "
                    f"{self.settings.connect_timeout} s ({error!r}); start one with JetStream enabled "
                    "(nats-server -js) or check interfaces.broker.nats.servers"
                ) from error
            raise
        self._ready = True
        loop = self._loop
        self._tasks = [
            loop.create_task(self._pump(), name=f"minos-nats-pump {self.settings.stream}"),
            loop.create_task(self._tick(), name=f"minos-nats-ticker {self.settings.stream}"),
        ]

    @property
    def open_timeout(self) -> float:
        """The longest ``open`` takes before it fails: ``connect_timeout`` to reach a server, then up to twice
        that for JetStream to answer (a cluster electing its leaders). Each JetStream consumer ``subscribe``
        creates may take up to twice ``connect_timeout`` more."""
        return 3 * self.settings.connect_timeout

    async def subscribe(self, group: str, topics: Sequence[str], *, transient: bool = False) -> None:
        self._check_open("subscribe")
        check_subscription(self, group, topics)
        assert self._nc is not None
        assert self._js is not None
        await self._consumers.subscribe(self._nc, self._js, group, topics, transient=transient)

    def publish_nowait(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        self._check_open("publish")
        check_message(topic, strategy)
        self._check_size(topic, body)
        if not self._publishes.has_room:
            raise BrokerFullError(
                f"{len(self._publishes)} publishes of {self!r} await JetStream's acceptance, the max_in_flight "
                f"of {self.max_in_flight!r}; await wait_writable() or publish() to wait for room"
            )
        return self._enqueue(topic, body, strategy)

    @property
    def dead_lettered(self) -> int:
        """Messages this connection sent to the dead-letter topic after too many deliveries."""
        return self._consumers.dead_lettered

    @property
    def connected(self) -> bool:
        nc = self._nc
        return self._state == "open" and self._ready and nc is not None and nc.is_connected

    def ack(self, tags: Iterable[int]) -> None:
        if self._state != "open" and self._state != "closing":
            raise ConnectionClosedError(
                f"{self!r} cannot acknowledge {reprlib.repr(tags)}: it is not open; JetStream delivers "
                "those messages again after ack_wait"
            )
        self._consumers.ack(tags)

    async def close(self, timeout: float = 5.0) -> None:
        if self._state == "new":
            self._state = "closed"
        if self._state == "closing":
            await self._closed.wait()
        if self._state != "open":
            return
        self._state = "closing"
        assert self._loop is not None
        deadline = self._loop.time() + timeout
        try:
            if not self._is_drained():
                self._drained = self._loop.create_future()
                self._kick()
                try:
                    await asyncio.wait_for(self._drained, timeout)
                except TimeoutError:
                    logger.warning("%r closes with publishes or acknowledgements not sent", self)
            nc, js = self._nc, self._js
            if nc is not None and js is not None and nc.is_connected:
                await self._consumers.give_back(nc, js, max(0.1, deadline - self._loop.time()))
        except (nats.errors.Error, OSError, TimeoutError) as error:
            logger.warning(
                "%r could not give back what it held (%r); JetStream redelivers it after ack_wait",
                self,
                error,
            )
        finally:
            await self._terminate()

    async def abort(self) -> None:
        """Drop the link at once, as a crash would: nothing more is sent, pending publishes fail.

        JetStream delivers what this peer held again once ``ack_wait`` passes without a sign of it.
        Meant for tests of failure handling.
        """
        self._consumers.control.clear()
        await self._terminate()

    # The API side's bookkeeping -------------------------------------------------------------------------

    def _check_size(self, topic: str, body: bytes) -> None:
        nc = self._nc
        limit = min(
            self.max_frame_size, nc.max_payload if nc is not None and nc.max_payload else self.max_frame_size
        )
        if len(body) > limit:
            raise FrameEncodeError(
                f"the message body to {topic!r} is {len(body)} bytes, over the limit of {limit} bytes (the smaller "
                "of max_frame_size and the NATS server's max_payload); send less, or raise both"
            )

    def _enqueue(self, topic: str, body: bytes, strategy: Strategy) -> asyncio.Future[None]:
        token = MULTICAST_TOKEN if strategy == MULTICAST_CODE else UNICAST_TOKEN
        subject = subject_of(self.settings.subject_prefix, token, topic)
        # Resent after a reconnection: JetStream drops the copy. Unique across connections (a random
        # prefix each) and within one (the window's sequence), without a uuid4 per message.
        headers = {"Nats-Msg-Id": f"{self._msg_ids}{self._publishes.next_sequence}"}
        future = self._publishes.add(topic, _Outgoing(subject, body, headers))
        self._kick()
        return future

    def _kick(self) -> None:
        self._wake.set()

    def _is_drained(self) -> bool:
        return not self._publishes and not self._consumers.control

    # The pump: everything sent on the link goes through here -------------------------------------------

    async def _pump(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._ready:
                    await self._send()
                if self._drained is not None and not self._drained.done() and self._is_drained():
                    self._drained.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the pump of %r failed; the connection is closed", self)
            self._state = "closed"
            self._fail_pending()

    async def _send(self) -> None:
        nc = self._nc
        assert nc is not None
        try:
            await self._consumers.send(nc)
            # None while refused publishes wait: they go first, in order, after their backoff.
            publishes, prefix = self._publishes, self._puback_prefix
            now = time.monotonic()
            while taken := publishes.take(0):  # one at a time: a send that fails leaves it first in line
                (publish,) = taken
                if publish.future is not None and publish.future.cancelled():
                    publishes.withdraw(publish.sequence)  # its sender gave up waiting (a send timeout)
                    continue
                outgoing = publish.payload
                try:
                    await nc.publish(
                        outgoing.subject,
                        outgoing.body,
                        reply=f"{prefix}.{publish.sequence}",
                        headers=outgoing.headers,
                    )
                except BaseException:
                    publishes.unsend(taken)
                    raise
                publishes.sent(taken, now)
        except (nats.errors.Error, OSError) as error:
            # Disconnected or the client's buffer is full: what was not sent stays queued for the resume.
            logger.debug("%r could not send (%r); it sends again once reconnected", self, error)

    async def _on_puback(self, msg: Msg) -> None:
        try:
            sequence = int(msg.subject.rpartition(".")[2])
        except ValueError:
            return
        publish = self._publishes.get(sequence)
        if publish is None:
            return
        data = msg.data
        if data.startswith(b'{"stream":') and b'"error"' not in data:
            self._accept(sequence)  # stored (or a duplicate of a stored one): no need to parse it
            return
        headers = msg.headers or {}
        if headers.get("Status") == "503":  # no responders: the stream is not there (yet, or any more)
            self._refuse(publish, "no JetStream stream takes the subject right now")
            return
        try:
            answer: Any = json.loads(data)
        except ValueError:
            answer = {"error": {"description": f"an unreadable PubAck {msg.data[:100]!r}"}}
        error = answer.get("error") if isinstance(answer, dict) else None
        if not error:
            self._accept(sequence)
            return
        if error.get("err_code") in _STREAM_FULL or error.get("code") == 503:
            self._refuse(publish, str(error.get("description", "the stream is full")))
            return
        self._publishes.failed(
            sequence,
            BrokerUnavailableError(
                f"JetStream refused the message to {publish.topic!r}: {error.get('description', error)!r} "
                f"(code {error.get('code')}, err_code {error.get('err_code')})"
            ),
        )
        self._maybe_retry()

    def _accept(self, sequence: int) -> None:
        self._publishes.accepted((sequence,))
        self._maybe_retry()
        if self._drained is not None:
            self._kick()

    def _refuse(self, publish: Publish[_Outgoing], why: str) -> None:
        if not publish.awaiting:
            return  # an answer to a send from before a reconnection: that publish went again since
        logger.debug(
            "%r: publish %d refused (%s); it goes again after a backoff", self, publish.sequence, why
        )
        delay = self._publishes.refused((publish.sequence,), time.monotonic())
        if delay is not None:
            assert self._loop is not None
            self._loop.call_later(delay, self._maybe_retry)
        self._maybe_retry()

    def _maybe_retry(self) -> None:
        """Send the refused publishes again, in order, once their backoff passed and every answer is in
        (later publishes may still be refused: they all go again together, in order)."""
        if self._publishes.retry(time.monotonic()):
            self._kick()

    # Timers ---------------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Keep held deliveries alive, renew lost pull requests and resend publishes whose PubAck got lost."""
        settings = self.settings
        interval = min(settings.ack_wait / 3, 1.0)
        while True:
            await asyncio.sleep(interval)  # sync-ok: a periodic timer, not waiting for something to happen
            if not self._ready:
                continue
            now = time.monotonic()
            consumers = self._consumers
            consumers.keep_alive(now)
            lost = self._publishes.overdue(now, 2 * settings.connect_timeout)
            if lost:
                logger.warning(
                    "%r got no PubAck for %d publishes within %.1f s (the stream may be electing a leader); "
                    "sending them again",
                    self,
                    lost,
                    2 * settings.connect_timeout,
                )
                self._restart_publishes()
            self._maybe_retry()  # a backoff whose last answer came by another path (a hard error, a loss)
            if consumers.control or consumers.refill_due or self._publishes.has_unsent:
                self._kick()  # whatever a send could not finish (a full client buffer ...) goes again

    # Reconnection ---------------------------------------------------------------------------------------

    async def _on_disconnected(self) -> None:
        if self._state == "open":
            self._ready = False
            logger.warning("%r lost the NATS server; reconnecting", self)

    async def _on_reconnected(self) -> None:
        logger.warning("%r reconnected to the NATS server; resuming its consumers", self)
        self._start_resume()

    def _start_resume(self) -> None:
        if self._state != "open":
            return
        self._ready = False
        assert self._js is not None
        self._restorer.request(self._js, self._consumers.consumers)

    def _resumed(self) -> None:
        self._restart_publishes()
        self._ready = True
        self._consumers.refill_due = True
        self._kick()

    def _restart_publishes(self) -> None:
        """Every publish not accepted yet goes again, in order, with its Nats-Msg-Id; the writer is woken."""
        self._publishes.withdraw_cancelled()  # their senders gave up waiting (a send timeout)
        self._publishes.restart()
        self._kick()

    # Ending ---------------------------------------------------------------------------------------------

    async def _terminate(self) -> None:
        self._state = "closed"
        self._ready = False
        resuming = self._restorer.task
        tasks = [*self._tasks, *([resuming] if resuming is not None else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks = []
        nc = self._nc
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except (nats.errors.Error, OSError) as error:
                logger.debug("%r: closing the NATS client failed: %r", self, error)
        self._fail_pending()
        self._closed.set()

    def _fail_pending(self) -> None:
        self._publishes.fail(self._closed_error)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
