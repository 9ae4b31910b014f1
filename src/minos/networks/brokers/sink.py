"""DispatchSink: handlers run in the subscriber actor's own loop, a bounded number at once.

A handler that fails (its dispatch came out with status 500, SYSTEM_ERROR) is tried again after a backoff,
up to ``RetryPolicy.max_attempts`` times; then the message goes to the dead-letter topic (see
``deadletters``) and only once the broker has accepted the dead letter is the message acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ..actors.eager import eager_task
from ..actors.handoff import LoopHandoff, resolve
from ..durable import EffectError, Inbox, ReceiptSender
from ..durable.inbox import Effects
from ..enroute import BrokerDispatcher, message_log_fields
from ..protocol import BrokerMessageV1, BrokerMessageV1Payload, BrokerMessageV1Status, FrameCodec
from ..protocol.frames import UNICAST_CODE
from ..transports import Incoming
from .config import RetryPolicy
from .dead_letter_queue import DeadLetter
from .dispatch_stats import DispatchStats, TopicStats
from .duplicates import DuplicateFilter
from .peer import PeerHandle
from .subscriber import decode_delivery, publish_receipt

__all__ = ["DispatchSink"]

# The logger of the module this class came from: log filters and the JSON `logger` field keep their name.
logger = logging.getLogger("minos.networks.brokers.handler")

_SYSTEM_ERROR = BrokerMessageV1Status.SYSTEM_ERROR


class _Job:
    """A delivery being handled: the message, its tag, its frame body (for a dead letter), its tries, and
    the counters of its topic (looked up once per message)."""

    __slots__ = ("attempts", "body", "counts", "message", "tag", "trace")

    trace: Any  # set only by a traced sink (brokers.traced), so an untraced job never pays for it

    def __init__(self, message: BrokerMessageV1, tag: int, body: bytes, counts: TopicStats) -> None:
        self.message = message
        self.tag = tag
        self.body = body
        self.counts = counts
        self.attempts = 0


class DispatchSink:
    """Runs the dispatcher on each delivery, in the actor's loop, at most ``concurrency`` at once.

    A delivery is acknowledged only once its handler has finished and its reply (if the sender asked
    for one) has been accepted by the broker, so a crash at any point before that means redelivery.
    A handler that does not suspend runs inline and never takes a slot; one that suspends holds one of
    the ``concurrency`` slots until it returns (not while its reply waits for the broker).
    With ``concurrency`` 1, messages are handled one after the other in delivery order, which keeps
    each publisher's messages on a topic in order (except that a message waiting for a retry lets the
    later ones pass).

    Failures and retries (when ``retries`` is given): a dispatch whose reply payload has status 500
    (SYSTEM_ERROR) is a failure. ``BrokerDispatcher`` gives 500 when the handler raised anything but a
    ``ResponseException`` or returned a reply the wire cannot carry, and also when a handler deliberately
    raised ``ResponseException(status=500)``: that too is retried. Other statuses (2xx, 4xx) are answers
    and never retried. A failed message is tried again after ``retries.delay(attempt)`` seconds, scheduled
    on the loop: meanwhile it holds no slot, other messages keep flowing, and it stays unacknowledged, so
    a crash means redelivery. After ``retries.max_attempts`` failures it is published to
    ``dead_letter_topic`` as a ``DeadLetter``; once the broker has accepted that, the sender gets the 500
    reply (if it asked for one), and once that is accepted too, the message is acknowledged. Without a
    ``dead_letter_topic``, the last failure is answered and acknowledged like any other outcome.

    Durable mode (when ``inbox`` is given): once a message is done (answered, or dead-lettered), it is
    marked in the inbox together with the effects its handler gave ``inbox_execute`` (only if the
    handler succeeded), in one group-committed transaction; only then is it answered and acknowledged.
    A copy already marked is answered and acknowledged without applying anything (see
    ``durable.inbox``). An effect that fails counts as a failed attempt (retried, then dead-lettered).

    Receipts: a message sent through an outbox (``durable.OUTBOX_HEADER``) is confirmed to it when it
    is acknowledged, and again whenever a copy of it is dropped as a duplicate.

    Counters (read from any thread, for metrics): ``handled`` messages done with an answer (not
    dead-lettered), ``retried`` retries scheduled, ``dead_lettered`` dead letters accepted by the broker,
    ``duplicates_marked`` copies the inbox found already marked; ``stats`` has them by topic, with
    handler durations (see ``stats.TopicStats``).

    Args:
        handle: The actor's handle (acknowledgements and replies go through it).
        dispatcher: Turns a message into a reply payload.
        concurrency: How many handlers may run at once.
        duplicates: Drops a message whose topic and identifier were handled recently.
        retries: How failing handlers are retried; None tries each message once.
        dead_letter_topic: Where messages go after their last failed attempt; None for nowhere.
        inbox: Makes the sink durable: where handled messages are marked (its store must be open).
        stats: The per-topic counters to add to (shared across restarts); fresh ones by default.
    """

    def __init__(
        self,
        handle: PeerHandle,
        dispatcher: BrokerDispatcher,
        concurrency: int,
        duplicates: DuplicateFilter,
        *,
        retries: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        inbox: Inbox | None = None,
        stats: DispatchStats | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self._handle = handle
        self._dispatcher = dispatcher
        self._concurrency = concurrency
        self._duplicates = duplicates
        self._retries = retries if retries is not None else RetryPolicy(max_attempts=1)
        self._dead_letter_topic = dead_letter_topic
        self._inbox = inbox
        self._handoff = LoopHandoff(asyncio.get_running_loop())  # the sink is built in the actor's loop
        self._receipts = ReceiptSender(publish_receipt(handle))
        self._codec = FrameCodec()
        self._waiting: deque[_Job] = deque()
        self._running: set[asyncio.Task[None]] = set()  # handlers that suspended, as Tasks
        self._unsettled = 0  # inbox marks, replies and dead letters whose outcome is not known yet
        self._all_settled: asyncio.Future[None] | None = None  # set by drain() while it waits for them
        self._timers: dict[_Job, asyncio.TimerHandle] = {}  # failed messages waiting for their retry
        self._draining = False
        self.handled = 0
        self.retried = 0
        self.dead_lettered = 0
        self.duplicates_marked = 0
        self.stats = stats if stats is not None else DispatchStats(dispatcher.topics)

    @property
    def backlog(self) -> tuple[int, int, int]:
        """Messages waiting for a slot, handlers running as Tasks, messages waiting for a retry (a snapshot)."""
        return len(self._waiting), len(self._running), len(self._timers)

    def __call__(self, incoming: Incoming) -> None:
        message = decode_delivery(self._codec, incoming, self._handle, self._duplicates, self._receipts)
        if message is None:
            return
        counts = self.stats.topic(message.topic)
        counts.received += 1
        counts.redelivered += incoming.redelivered
        self._submit(_Job(message, incoming.tag, incoming.body, counts))

    def _submit(self, job: _Job) -> None:
        if self._draining or len(self._running) >= self._concurrency:
            self._waiting.append(job)
        else:
            self._start(job)

    def _start(self, job: _Job) -> None:
        """Run the handler at once, inline; only if it suspends does it become a Task (and take a slot).

        Most handlers never suspend, and a Task per message would cost more than the dispatch itself
        (see ``actors.eager``, which also keeps the first step and the Task in one context).
        """
        try:
            task = eager_task(self._handle_one(job))
        except Exception:  # not acknowledged: the broker delivers it again
            logger.exception(
                "%s: handling %s failed outside its handler",
                self._handle.name,
                job.message.identifier,
                extra=message_log_fields(job.message),
            )
            return
        if task is None:
            return
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        while not self._draining and self._waiting and len(self._running) < self._concurrency:
            self._start(self._waiting.popleft())

    async def _handle_one(self, job: _Job) -> None:
        counts = job.counts
        started = time.perf_counter()
        if self._inbox is None:
            payload = await self._dispatcher.dispatch(job.message)
            effects: Effects = []
        else:
            effects, token = Inbox.collect()
            try:
                payload = await self._dispatcher.dispatch(job.message)
            finally:
                Inbox.stop_collecting(token)
        counts.observe(time.perf_counter() - started)
        job.attempts += 1
        if payload.status == _SYSTEM_ERROR:
            counts.failed += 1
            self._failed(job, payload)
        else:
            self._done(job, payload, effects if payload.status < 400 else [], dead_lettered=False)

    def _failed(self, job: _Job, payload: BrokerMessageV1Payload) -> None:
        """Attempt ``job.attempts`` failed: retry after a backoff, or dead-letter, or give up and answer."""
        if job.attempts < self._retries.max_attempts:
            self.retried += 1
            job.counts.retried += 1
            delay = self._retries.delay(job.attempts)
            self._timers[job] = asyncio.get_running_loop().call_later(delay, self._retry, job)
            return
        if self._dead_letter_topic is not None:
            self._dead_letter(job, self._dead_letter_topic, payload)
            return
        self._done(job, payload, [], dead_lettered=False)

    def _done(
        self, job: _Job, payload: BrokerMessageV1Payload, effects: Effects, *, dead_lettered: bool
    ) -> None:
        """The message is done with: mark it in the inbox (durable mode), then answer and acknowledge it."""
        if self._inbox is None:
            if not dead_lettered:
                self.handled += 1
                job.counts.handled += 1
            self._answer(job, payload)
            return
        self._track()
        try:
            self._inbox.mark(
                job.message,
                effects,
                lambda result, error: self._handoff.call(
                    self._marked, job, payload, dead_lettered, result, error
                ),
            )
        except Exception as error:  # the store is closed: stopping
            self._marked(job, payload, dead_lettered, None, error)

    def _marked(
        self,
        job: _Job,
        payload: BrokerMessageV1Payload,
        dead_lettered: bool,
        new: bool | None,
        error: BaseException | None,
    ) -> None:
        self._settled()
        if (
            isinstance(error, EffectError) and not dead_lettered
        ):  # the handler's effects failed: an attempt failed
            logger.warning("%s: %s", self._handle.name, error, extra=message_log_fields(job.message))
            job.counts.failed += 1
            self._failed(job, BrokerMessageV1Payload(str(error), status=_SYSTEM_ERROR))
            return
        if error is not None:
            self._keep_unacknowledged(job, logging.ERROR, f"could not be marked handled: {error}")
            return
        if not new:
            self.duplicates_marked += 1
        elif not dead_lettered:
            self.handled += 1
            job.counts.handled += 1
        self._answer(job, payload)

    def _retry(self, job: _Job) -> None:
        del self._timers[job]
        self._submit(job)

    def _dead_letter(self, job: _Job, topic: str, payload: BrokerMessageV1Payload) -> None:
        """Publish the dead letter; the reply and the acknowledgement wait for the broker's acceptance."""
        letter = DeadLetter(
            topic=job.message.topic,
            identifier=job.message.identifier,
            error=str(payload.content),
            attempts=job.attempts,
            failed_at=datetime.now(UTC),
            message=job.body,
        )
        try:
            body = self._codec.encode(letter.to_message(topic))[1]
        except Exception:  # e.g. too large for a frame: keep the message, it comes back after a restart
            logger.exception(
                "%s: cannot build the dead letter of message %s on %r; it stays unacknowledged and is "
                "delivered again when this dispatcher stops",
                self._handle.name,
                job.message.identifier,
                job.message.topic,
                extra=message_log_fields(job.message),
            )
            self._duplicates.forget(job.message.topic, job.message.identifier)
            return
        self._track()
        self._handle.publish(topic, body, UNICAST_CODE, partial(self._dead_lettered, job, payload))

    def _dead_lettered(
        self,
        job: _Job,
        payload: BrokerMessageV1Payload,
        error: BaseException | None,
    ) -> None:
        self._settled()
        if error is not None:
            self._keep_unacknowledged(
                job, logging.WARNING, f"had its dead letter refused by the broker: {error}"
            )
            return
        self.dead_lettered += 1
        job.counts.dead_lettered += 1
        logger.error(
            "%s: message %s on %r failed %d times and went to the dead letters: %s",
            self._handle.name,
            job.message.identifier,
            job.message.topic,
            job.attempts,
            payload.content,
            extra=message_log_fields(job.message),
        )
        # A replay republishes this very message (same identifier): it must not be taken for a duplicate.
        self._duplicates.forget(job.message.topic, job.message.identifier)
        self._done(job, payload, [], dead_lettered=True)

    def _keep_unacknowledged(self, job: _Job, level: int, why: str) -> None:
        """Leave ``job`` unacknowledged (the broker delivers it again) and let its next copy through the filter."""
        logger.log(
            level,
            "%s: message %s on %r %s; it stays unacknowledged and is delivered again",
            self._handle.name,
            job.message.identifier,
            job.message.topic,
            why,
            extra=message_log_fields(job.message),
        )
        self._duplicates.forget(job.message.topic, job.message.identifier)

    def _answer(self, job: _Job, payload: BrokerMessageV1Payload) -> None:
        """Reply if the sender asked for one; acknowledge once the reply is accepted (or at once)."""
        message = job.message
        if message.reply_topic is None:
            self._ack(job)
            return
        reply = BrokerMessageV1(message.reply_topic, payload, identifier=message.identifier)
        self._track()
        self._handle.publish(
            reply.topic, self._codec.encode(reply)[1], UNICAST_CODE, partial(self._replied, job), job.tag
        )

    def _ack(self, job: _Job) -> None:
        self._handle.ack(job.tag)
        self._receipts.add(job.message)

    def _track(self) -> None:
        """One more outcome to wait for (an inbox mark, a reply, a dead letter); ``_settled`` once it is known."""
        self._unsettled += 1

    def _settled(self) -> None:
        self._unsettled -= 1
        if not self._unsettled and self._all_settled is not None:
            resolve(self._all_settled)

    def _replied(self, job: _Job, error: BaseException | None) -> None:
        self._settled()
        if error is None:  # the request was acknowledged with its reply's acceptance
            self._receipts.add(job.message)
        else:  # not acknowledged: the broker delivers the request again
            logger.warning("%s: a reply was not accepted by the broker: %s", self._handle.name, error)

    async def drain(self, timeout: float) -> None:
        """Start nothing new; let running handlers and their replies finish within ``timeout`` seconds.

        Handlers still running then are cancelled. Messages still waiting (for a slot or for a retry)
        are not acknowledged, so the broker gives them to another member.
        """
        self._draining = True
        for job in self._waiting:  # they go back to the broker, maybe to this very process
            self._duplicates.forget(job.message.topic, job.message.identifier)
        self._waiting.clear()
        if self._timers:
            for job, timer in self._timers.items():
                timer.cancel()
                self._duplicates.forget(job.message.topic, job.message.identifier)
            logger.info(
                "%s: %d messages waiting for a retry go back to the broker unacknowledged",
                self._handle.name,
                len(self._timers),
            )
            self._timers.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning(
                    "%s: %d handlers still running after %s s were cancelled; their messages will be redelivered",
                    self._handle.name,
                    len(pending),
                    timeout,
                )
                await asyncio.gather(*pending, return_exceptions=True)
        if self._unsettled:
            self._all_settled = loop.create_future()
            await asyncio.wait({self._all_settled}, timeout=max(0.0, deadline - loop.time()))
