"""NatsConsumers: what a NatsConnection receives, from its pull requests to the verdict on each delivery.

How it maps the receiving half of ``Connection``'s contract onto JetStream (see ``subjects`` for names):

- A group's subscription to a topic is a durable pull consumer of the topic's MULTICAST subject, shared
  by the group's members (one copy per group, load-balanced inside it), plus the topic's UNICAST
  consumer, shared by every group subscribed to the topic (so a unicast message reaches exactly one
  member of one group). A transient group's consumers live in memory, are deleted when a member closes,
  and are removed by the server ``transient_ttl`` after a member vanished.
- A member pulls at most ``window`` deliveries it has not acknowledged, spread over its consumers.
  ``ack`` sends ``+ACK`` (with whatever the connection sends next, or within 2 ms: one write and one
  wake-up of the server for several, at low load too); what it holds gets ``+WPI`` (in progress) every third of ``ack_wait``, so only
  a dead or cut-off member's deliveries come back, ``ack_wait`` after it went silent, flagged
  redelivered. A clean ``close`` sends ``-NAK`` for what it holds, which comes back at once.
- A message delivered more than ``max_deliveries`` times without an acknowledgement (its holders
  crashed each time) goes to the dead-letter topic in the format of ``brokers.dead_letter_queue``, then is
  terminated (``+TERM``) in JetStream.

It owns the connection's JetStream pull consumers (made through ``jetstream``), asks them for as many
deliveries as the window has room for, hands what arrives to ``on_delivery``, keeps what this peer holds
alive (``+WPI``), settles it (``+ACK``; ``+TERM`` once dead-lettered), gives it back at close (``-NAK``),
and sends what was delivered more than ``max_deliveries`` times to the dead-letter topic. What it has to
send waits in ``control`` and in pull requests, which the connection's pump sends (``send``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ..exceptions import FrameDecodeError
from ..protocol import BrokerMessageV1, BrokerMessageV1Payload, FrameCodec
from .connection import Connection, Incoming, Strategy
from .jetstream import Consumer, consumer_for, provision_consumer
from .subjects import MULTICAST_TOKEN, UNICAST_TOKEN, NatsSettings, consumer_name

__all__ = ["NatsConsumers"]

logger = logging.getLogger(__name__)

_ACK: Final = b"+ACK"
_NAK: Final = b"-NAK"
_PROGRESS: Final = b"+WPI"
_TERM: Final = b"+TERM"
_SETTLE_DELAY: Final = 0.002  # seconds a verdict may wait for another send to go out with


def _delivery_count(msg: Msg) -> int:
    """How many times JetStream delivered ``msg``, from its reply subject.

    The plain ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>`` is read here:
    ``msg.metadata`` builds a record of every field (a datetime included) for each delivery. Any other
    form (with a domain, or not a JetStream message at all) goes through ``msg.metadata``, as before.
    """
    tokens = msg.reply.split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[4])
    return msg.metadata.num_delivered


@dataclass(slots=True)
class _Held:
    reply: str
    signalled_at: float  # when JetStream last heard of this delivery (delivered, or +WPI)


class NatsConsumers:
    """The receiving side of one ``NatsConnection``; lives in its event loop.

    Args:
        owner: The connection: its ``on_delivery`` and ``window`` are read at each use, its repr names
            it in log lines.
        settings: The connection's settings.
        dead_letter_topic: Where a message delivered too often goes (see ``NatsConnection``); empty: nowhere.
        codec: Reads the identifier of a message to dead-letter, and encodes the dead letter.
        state: The connection's state (``new``, ``open``, ``closing`` or ``closed``).
        wake: Wakes the connection's pump, to ``send`` what waits.
        resume: Has the connection check the stream and its consumers again (one was deleted).
        publish: Queues a publish on the connection (topic, body, strategy), for dead letters.
    """

    def __init__(
        self,
        owner: Connection,
        settings: NatsSettings,
        *,
        dead_letter_topic: str,
        codec: FrameCodec,
        state: Callable[[], str],
        wake: Callable[[], None],
        resume: Callable[[], None],
        publish: Callable[[str, bytes, Strategy], asyncio.Future[None]],
    ) -> None:
        self.control: deque[tuple[str, bytes]] = deque()
        """Verdicts to send (subject, payload), in order: acknowledgements of every kind, +WPI."""
        self.refill_due = False
        """Whether ``pull_requests`` may have requests to send."""
        self.dead_lettered = 0
        """Messages sent to the dead-letter topic after too many deliveries."""
        self._owner = owner
        self._settings = settings
        self._dead_letter_topic = dead_letter_topic
        self._codec = codec
        self._state = state
        self._wake = wake
        self._resume = resume
        self._publish = publish
        self._consumers: dict[str, Consumer] = {}
        self._dead_letter_ready = False
        self._held: dict[int, _Held] = {}
        self._pulls_over: asyncio.Future[None] | None = None  # closing: no pull request waits any more
        self._next_tag = 0
        self._pull_api = f"$JS.API.CONSUMER.MSG.NEXT.{settings.stream}."
        self._loop: asyncio.AbstractEventLoop | None = None  # the connection's, once it subscribed
        self._settle_timer: asyncio.TimerHandle | None = None  # sends verdicts no other send took along

    @property
    def consumers(self) -> Iterable[Consumer]:
        """The pull consumers this peer reads from, in the order it subscribed."""
        return self._consumers.values()

    async def subscribe(
        self, nc: Client, js: JetStreamContext, group: str, topics: Sequence[str], *, transient: bool
    ) -> None:
        """Make (or check) the consumers of ``group`` for ``topics`` and listen to them; then pull."""
        self._loop = asyncio.get_running_loop()
        settings = self._settings
        if self._dead_letter_topic and not self._dead_letter_ready:
            # Interest retention drops messages no consumer wants: make the dead-letter topic wanted now.
            keeper = consumer_for(settings, UNICAST_TOKEN, "", self._dead_letter_topic, transient=False)
            await provision_consumer(js, settings, keeper, repr(self._owner))
            self._dead_letter_ready = True
        for topic in topics:
            for token, owner in ((UNICAST_TOKEN, ""), (MULTICAST_TOKEN, group)):
                name = consumer_name(token, owner, topic)
                if name in self._consumers:
                    continue
                consumer = consumer_for(settings, token, owner, topic, transient=transient)
                await provision_consumer(js, settings, consumer, repr(self._owner))
                await self._listen(nc, consumer)
                self._consumers[name] = consumer
        self.refill_due = True
        self._wake()

    def ack(self, tags: Iterable[int]) -> None:
        """Queue ``+ACK`` for these deliveries (those still held)."""
        self._settle(tags, _ACK)

    def _settle(self, tags: Iterable[int], verdict: bytes) -> None:
        held, control = self._held, self.control
        for tag in tags:
            entry = held.pop(tag, None)
            if entry is not None:
                control.append((entry.reply, verdict))
        self.refill_due = True
        if len(held) * 2 >= self._owner.window or self._loop is None:
            self._wake()  # the window is tight: the room these verdicts free is wanted now
        elif self._settle_timer is None:
            # Go out with the next send (a reply, the next publish), or in a moment: one write for
            # several, not a write (and a wake-up of the server) for each.
            self._settle_timer = self._loop.call_later(_SETTLE_DELAY, self._settle_due)

    def _settle_due(self) -> None:
        self._settle_timer = None
        if self.control or self.refill_due:
            self._wake()

    def pull_requests(self) -> list[tuple[str, bytes, str]]:
        """If a refill is due (it no longer is then): the pull requests (subject, payload, reply) that ask
        the consumers for as many deliveries as the window has room for, shared among them."""
        if not self.refill_due:
            return []
        self.refill_due = False
        consumers = self._consumers
        if not consumers or self._state() != "open":
            return []
        window = self._owner.window
        free = window - len(self._held) - sum(c.outstanding for c in consumers.values())
        share = max(1, window // len(consumers))
        expires = self._settings.pull_expires
        now = time.monotonic()
        requests = []
        for consumer in consumers.values():
            want = min(share - consumer.outstanding, free)
            if want < 1 or (consumer.outstanding and want < max(1, share // 2)):
                continue  # a request still covers most of its share: do not chop pulls into crumbs
            free -= want
            consumer.outstanding += want
            consumer.expires_at = now + expires
            payload = b'{"batch":%d,"expires":%d}' % (want, int(expires * 1e9))
            requests.append((self._pull_api + consumer.name, payload, consumer.reply))
        return requests

    async def send(self, nc: Client) -> None:
        """Send the pull requests due, then what waits in ``control``; what a failed send leaves stays queued."""
        for subject, payload, reply in self.pull_requests():
            await nc.publish(subject, payload, reply=reply)
        control = self.control
        while control:
            subject, payload = control[0]
            await nc.publish(subject, payload)
            control.popleft()
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None

    def keep_alive(self, now: float) -> None:
        """Queue ``+WPI`` for held deliveries JetStream has not heard of for a third of ``ack_wait``, and
        write off pull requests that expired without a word (so a refill is due).

        A request's 408 leaves the server as the request expires, ``pull_expires`` after it got there; half
        of ``pull_expires`` more covers the trips there and back. One that has not come by then never
        will: nats-server 2.9 ends an expired request silently when a message comes for it before its
        expiry timer ran (a race, under load or after a stall), and a server that restarts or changes
        leaders forgets requests. Waiting longer only leaves the consumer without deliveries meanwhile.
        """
        settings = self._settings
        keep_alive = settings.ack_wait / 3
        control = self.control
        for held in self._held.values():
            if now - held.signalled_at >= keep_alive:
                control.append((held.reply, _PROGRESS))
                held.signalled_at = now
        written_off = False
        for consumer in self._consumers.values():
            if consumer.outstanding and now > consumer.expires_at + settings.pull_expires / 2:
                consumer.forget_requests()
                self.refill_due = written_off = True
        if written_off:
            self._check_pulls_over()  # a close waiting for its requests to end need not wait any more

    # What arrives ---------------------------------------------------------------------------------------

    async def _listen(self, nc: Client, consumer: Consumer) -> None:
        async def deliver(msg: Msg) -> None:
            self._on_message(consumer, msg)

        consumer.inbox = nc.new_inbox()
        consumer.subscription = await nc.subscribe(f"{consumer.inbox}.*", cb=deliver)  # every generation

    def _on_message(self, consumer: Consumer, msg: Msg) -> None:
        if not msg.reply:  # a status: the pull request expired (408), or was refused (409) ...
            self._on_status(consumer, msg)
            return
        consumer.outstanding = max(0, consumer.outstanding - 1)
        if self._pulls_over is not None:
            self._check_pulls_over()
        if consumer.outstanding * 2 < max(1, self._owner.window // max(1, len(self._consumers))):
            self.refill_due = True
            self._wake()
        if self._state() == "closed":
            return  # JetStream delivers it again after ack_wait
        delivered = _delivery_count(msg)
        self._next_tag += 1
        tag = self._next_tag
        self._held[tag] = _Held(msg.reply, time.monotonic())
        limit = self._settings.max_deliveries
        if limit and delivered > limit and self._dead_letter_topic:
            self._bury(tag, consumer.topic, msg.data, delivered)
            return
        deliver = self._owner.on_delivery
        if deliver is None:
            logger.error(
                "%r got a delivery but has no on_delivery handler; it comes back after ack_wait", self._owner
            )
            return
        try:
            deliver(Incoming(tag, consumer.topic, msg.data, delivered > 1))
        except Exception:
            logger.exception("on_delivery of %r failed on a message to %r", self._owner, consumer.topic)

    def _on_status(self, consumer: Consumer, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "409" and "Deleted" in str(headers.get("Description", "")):
            logger.warning(
                "%r: consumer %s was deleted at the server; creating it again", self._owner, consumer.name
            )
            self._resume()
        if msg.subject != consumer.reply:
            return  # about a request written off already (``forget_requests``): none of the current ones
        pending = headers.get("Nats-Pending-Messages")
        if pending is not None:
            consumer.outstanding = max(0, consumer.outstanding - int(pending))
        elif status != "100":  # not a heartbeat: this request is over, how much of it unknown
            consumer.outstanding = 0
        self._check_pulls_over()
        self.refill_due = True
        self._wake()

    def _bury(self, tag: int, topic: bytes, body: bytes, delivered: int) -> None:
        """Publish a message delivered too often to the dead-letter topic, then terminate it in JetStream."""
        try:
            identifier = self._codec.decode([topic, body]).identifier
        except FrameDecodeError:
            identifier = uuid.uuid4()  # not even a message: the dead letter still keeps its bytes
        content = {
            "topic": topic.decode(),
            "identifier": identifier,
            "error": (
                f"delivered {delivered} times without being acknowledged (its handlers crashed, hung or were "
                f"cut off each time); max_deliveries is {self._settings.max_deliveries}"
            ),
            "attempts": delivered - 1,
            "failed_at": datetime.now(UTC),
            "message": body,
        }
        letter = BrokerMessageV1(self._dead_letter_topic, BrokerMessageV1Payload(content))
        _, frame = self._codec.encode(letter)
        logger.error(
            "%r: a message to %r was delivered %d times; sending it to %r",
            self._owner,
            topic,
            delivered,
            letter.topic,
        )

        def buried(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and future.exception() is None:
                self.dead_lettered += 1
                self._settle((tag,), _TERM)
            # else: not terminated, so JetStream delivers it again after ack_wait, and we try again then

        self._publish(self._dead_letter_topic, frame, 0).add_done_callback(buried)

    # Giving back what this peer holds -------------------------------------------------------------------

    async def give_back(self, nc: Client, js: JetStreamContext, timeout: float) -> None:
        """Stop receiving, send -NAK for what this peer holds, and remove its transient consumers.

        The -NAKs go only once no pull request of this peer waits at the server any more: nats-server
        2.9 mishandles a -NAK while the consumer has a waiting request whose subscriber is gone (the
        message goes to that request and is lost until ``ack_wait``, another one is delivered twice).
        Requests end within ``pull_expires``; if they have not by ``timeout``, nothing is sent back and
        JetStream redelivers what this peer held after ``ack_wait``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._held and not self._pulls_over_now():
            self._pulls_over = loop.create_future()
            try:
                await asyncio.wait_for(self._pulls_over, max(0.0, deadline - loop.time()))
            except TimeoutError:
                logger.info(
                    "%r closes with pull requests pending: what it holds comes back after ack_wait",
                    self._owner,
                )
        nak = self._pulls_over_now()
        for consumer in self._consumers.values():
            if consumer.subscription is not None:
                await consumer.subscription.unsubscribe()
                consumer.subscription = None
        held, self._held = self._held, {}
        if nak:
            await nc.flush(timeout=max(1, round(deadline - loop.time())))
            for entry in held.values():
                await nc.publish(entry.reply, _NAK)
        for consumer in self._consumers.values():
            if consumer.transient:
                try:
                    await js.delete_consumer(self._settings.stream, consumer.name)
                except nats.js.errors.NotFoundError:
                    pass
        await nc.flush(timeout=max(1, round(deadline - loop.time())))

    def _pulls_over_now(self) -> bool:
        """Whether no pull request of this peer's durable consumers waits at the server."""
        return all(c.outstanding == 0 for c in self._consumers.values() if not c.transient)

    def _check_pulls_over(self) -> None:
        waiter = self._pulls_over
        if waiter is not None and not waiter.done() and self._pulls_over_now():
            waiter.set_result(None)
