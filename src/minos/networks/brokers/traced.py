"""TracedDispatchSink: the dispatch sink with OpenTelemetry spans for each attempt, retry, reply and dead letter.

A subclass, chosen when the handler starts with tracing on (see ``minos.networks.tracing``), so the plain
sink pays nothing per message for tracing being possible. Each attempt at a message is a
``<topic> process`` span whose parent is the message's ``traceparent``; it is the current span while the
handler runs, so whatever the handler publishes (``BrokerPublisher.send``, ``BrokerClient``) is its child.
The reply and the dead letter are ``publish`` spans under the attempt that led to them, and a retry is a
``<topic> retry`` span that lasts as long as its backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..durable import Inbox
from ..enroute import BrokerDispatcher
from ..protocol import BrokerMessageV1Payload
from ..tracing import MESSAGING_SYSTEM, Tracing, current
from ..transports import Incoming
from .config import RetryPolicy
from .dispatch_stats import DispatchStats
from .duplicates import DuplicateFilter
from .peer import PeerHandle
from .sink import DispatchSink, _Job

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

__all__ = ["TracedDispatchSink", "dispatch_sink"]


def dispatch_sink(group: str) -> Callable[..., DispatchSink]:
    """``DispatchSink`` when tracing is off now, else a maker of ``TracedDispatchSink`` for consumer ``group``.

    Call it when the sink's actor starts, and the result with ``DispatchSink``'s arguments.
    """
    tracing = current()
    return DispatchSink if tracing is None else partial(TracedDispatchSink, tracing=tracing, group=group)


class _JobTrace:
    """What the spans of one message need across its attempts."""

    __slots__ = ("dead_letter", "ended", "error", "parent", "redelivered", "reply", "retry", "span", "status")

    def __init__(self, parent: Context, redelivered: bool) -> None:
        self.parent = parent
        self.redelivered = redelivered
        self.span: Span | None = None  # the latest attempt's
        self.ended = False  # whether that span has ended
        self.status: int | None = None  # the latest attempt's reply status
        self.error: str | None = None
        self.retry: Span | None = None
        self.reply: Span | None = None
        self.dead_letter: Span | None = None


class TracedDispatchSink(DispatchSink):
    """A ``DispatchSink`` that traces what it does with ``tracing``; ``group`` is the consumer group.

    The other arguments are ``DispatchSink``'s.
    """

    def __init__(
        self,
        handle: PeerHandle,
        dispatcher: BrokerDispatcher,
        concurrency: int,
        duplicates: DuplicateFilter,
        *,
        tracing: Tracing,
        group: str,
        retries: RetryPolicy | None = None,
        dead_letter_topic: str | None = None,
        inbox: Inbox | None = None,
        stats: DispatchStats | None = None,
    ) -> None:
        super().__init__(
            handle,
            dispatcher,
            concurrency,
            duplicates,
            retries=retries,
            dead_letter_topic=dead_letter_topic,
            inbox=inbox,
            stats=stats,
        )
        self._tracing = tracing
        self._group = group
        self._redelivered = False

    def __call__(self, incoming: Incoming) -> None:
        self._redelivered = incoming.redelivered  # read by _submit, which the call reaches synchronously
        super().__call__(incoming)

    def _submit(self, job: _Job) -> None:
        if getattr(job, "trace", None) is None:  # a new delivery, not a retry
            job.trace = _JobTrace(self._tracing.extract(job.message.headers), self._redelivered)
        super()._submit(job)

    async def _handle_one(self, job: _Job) -> None:
        tracing, message, trace = self._tracing, job.message, job.trace
        attributes = tracing.message_attributes(message, "process")
        attributes["messaging.consumer.group.name"] = self._group
        attributes["messaging.minos.attempt"] = job.attempts + 1
        attributes["messaging.minos.retry.count"] = job.attempts
        attributes["messaging.minos.redelivered"] = trace.redelivered
        span = tracing.start(f"{message.topic} process", attributes, kind="CONSUMER", parent=trace.parent)
        trace.span, trace.ended, trace.status = span, False, None
        token = tracing.activate(span)
        try:
            await super()._handle_one(job)
        except BaseException as error:
            tracing.fail(span, f"{type(error).__name__}: {error}", error)
            raise
        finally:
            tracing.deactivate(token)
            if trace.status is not None:
                span.set_attribute("messaging.minos.reply.status", int(trace.status))
            if trace.error is not None:
                tracing.fail(span, trace.error)
                trace.error = None
            trace.ended = True
            span.end()

    def _failed(self, job: _Job, payload: BrokerMessageV1Payload) -> None:
        trace: _JobTrace = job.trace
        if not trace.ended:
            trace.status, trace.error = payload.status, str(payload.content)
        if job.attempts < self._retries.max_attempts:
            attributes = self._tracing.message_attributes(job.message, "process")
            attributes["messaging.consumer.group.name"] = self._group
            attributes["messaging.minos.attempt"] = job.attempts
            attributes["messaging.minos.retry.count"] = job.attempts
            attributes["messaging.minos.error"] = str(payload.content)
            trace.retry = self._tracing.start(
                f"{job.message.topic} retry", attributes, parent=trace.span or trace.parent
            )
        super()._failed(job, payload)

    def _retry(self, job: _Job) -> None:
        trace: _JobTrace = job.trace
        if trace.retry is not None:
            trace.retry.end()
            trace.retry = None
        super()._retry(job)

    async def drain(self, timeout: float) -> None:
        for job in self._timers:  # their retries will not happen here: end the spans of the backoffs
            trace: _JobTrace = job.trace
            if trace.retry is not None:
                trace.retry.set_attribute("messaging.minos.retry.abandoned", True)
                trace.retry.end()
                trace.retry = None
        await super().drain(timeout)

    def _done(self, job: _Job, payload: BrokerMessageV1Payload, effects: Any, *, dead_lettered: bool) -> None:
        trace: _JobTrace = job.trace
        if not trace.ended:
            trace.status = payload.status
        super()._done(job, payload, effects, dead_lettered=dead_lettered)

    def _dead_letter(self, job: _Job, topic: str, payload: BrokerMessageV1Payload) -> None:
        trace: _JobTrace = job.trace
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation": "publish",
            "messaging.destination.name": topic,
            "messaging.minos.dead_letter": True,
            "messaging.minos.dead_letter.topic": job.message.topic,
            "messaging.minos.dead_letter.message.id": str(job.message.identifier),
            "messaging.minos.attempt": job.attempts,
            "messaging.minos.error": str(payload.content),
        }
        trace.dead_letter = self._tracing.start(
            f"{topic} publish", attributes, kind="PRODUCER", parent=trace.span or trace.parent
        )
        super()._dead_letter(job, topic, payload)

    def _dead_lettered(self, job: _Job, payload: BrokerMessageV1Payload, error: BaseException | None) -> None:
        trace: _JobTrace = job.trace
        if trace.dead_letter is not None:
            self._tracing.settle(trace.dead_letter, "dead letter")(error)
            trace.dead_letter = None
        super()._dead_lettered(job, payload, error)

    def _answer(self, job: _Job, payload: BrokerMessageV1Payload) -> None:
        message, trace = job.message, job.trace
        if message.reply_topic is not None:
            attributes: dict[str, Any] = {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation": "publish",
                "messaging.destination.name": message.reply_topic,
                "messaging.message.id": str(message.identifier),
                "messaging.minos.reply": True,
                "messaging.minos.reply.status": int(payload.status),
            }
            span = self._tracing.start(
                f"{message.reply_topic} publish",
                attributes,
                kind="PRODUCER",
                parent=trace.span or trace.parent,
            )
            trace.reply = span
            headers = self._tracing.inject(dict(payload.headers), span)
            payload = BrokerMessageV1Payload(payload.content, headers, payload.status)
        super()._answer(job, payload)

    def _replied(self, job: _Job, error: BaseException | None) -> None:
        trace: _JobTrace = job.trace
        if trace.reply is not None:
            self._tracing.settle(trace.reply, "reply")(error)
            trace.reply = None
        super()._replied(job, error)
