"""Tracing: W3C trace context in message headers and OpenTelemetry spans, when tracing is on.

Everything here goes through the OpenTelemetry API (``opentelemetry-api``, the ``[otel]`` extra): the
tracer, the propagator (W3C ``traceparent`` and ``tracestate`` by default, whatever
``OTEL_PROPAGATORS`` says otherwise) and the exporter are the user's. Nothing is written here that the
API or the SDK does.

On or off. Tracing is decided when a component starts (a publisher, a dispatcher, the HTTP port, a
periodic run), by :func:`current`:

- ``configure(True)`` (``tracing: true`` at the top level of the config) turns it on, with the global
  tracer provider: without an SDK its spans record nothing, but the trace context of incoming messages and
  requests is still carried on to what they cause;
- ``configure(False)`` (``tracing: false``) turns it off, even with an SDK configured;
- otherwise (no ``tracing`` key) it is on exactly when an OpenTelemetry SDK tracer provider is set as the
  global one (``opentelemetry.trace.set_tracer_provider``), i.e. the global provider is neither the API's
  default proxy nor its no-op provider. ``opentelemetry`` is not even imported to find out when nothing
  imported it before.

Off, a component holds ``None`` instead of a :class:`Tracing` and its hot path pays one ``is not None``
check per message: no import of ``opentelemetry``, no context object, no header.

Spans (``messaging.system`` is ``"minos"`` over every transport, the broker's semantics being ours):

=========================  ========  ======================================================================
span                       kind      parent
=========================  ========  ======================================================================
``<topic> publish``        PRODUCER  the current span (a handler's, an HTTP request's, a periodic run's)
``<topic> process``        CONSUMER  the ``traceparent`` of the message: one span per attempt
``<topic> retry``          INTERNAL  the failed attempt; it lasts as long as the backoff
``<reply topic> publish``  PRODUCER  the attempt that answered (``messaging.minos.reply.status``)
``<dlq topic> publish``    PRODUCER  the last attempt (``messaging.minos.dead_letter``)
``<METHOD> <route>``       SERVER    the ``traceparent`` of the HTTP request
``periodic <task>``        INTERNAL  none: a run starts a trace
=========================  ========  ======================================================================
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .protocol.messages import BrokerMessage, BrokerMessageV1, BrokerMessageV1Payload

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, TracerProvider

__all__ = [
    "MESSAGING_SYSTEM",
    "TRACE_HEADERS",
    "Tracing",
    "configure",
    "current",
    "periodic_run",
]

MESSAGING_SYSTEM = "minos"
"""The ``messaging.system`` of every messaging span."""

TRACE_HEADERS = ("traceparent", "tracestate")
"""The message headers the W3C trace context travels in."""

_setting: bool | None = None  # tracing: true / false in the config; None decides by the tracer provider
_provider: TracerProvider | None = None  # a provider given to configure (tests), instead of the global one
_cached: Tracing | None = None


def configure(enabled: bool | None = None, *, tracer_provider: TracerProvider | None = None) -> None:
    """Turn tracing on (True) or off (False) for this process, or let the tracer provider decide (None).

    Components that already started keep what they decided; those started later follow. The composition
    root calls this with the config's top-level ``tracing`` key.

    Args:
        enabled: True, False, or None to trace exactly when an SDK tracer provider is set globally.
        tracer_provider: Trace with this provider instead of the global one (tests); it turns tracing
            on unless ``enabled`` is False.

    Raises:
        ModuleNotFoundError: Tracing is turned on but ``opentelemetry-api`` is not installed; install
            ``minos-networks[otel]``.
    """
    global _setting, _provider, _cached
    _setting, _provider, _cached = enabled, tracer_provider, None
    if enabled or tracer_provider is not None:
        _import_api()


def current() -> Tracing | None:
    """What components starting now trace with: a :class:`Tracing`, or None when tracing is off."""
    global _cached
    if _setting is False:
        return None
    if _provider is not None:
        provider: Any = _provider
    else:
        trace = sys.modules.get("opentelemetry.trace")
        if trace is None:
            if not _setting:
                return None
            trace = _import_api()
        provider = trace.get_tracer_provider()
        if not _setting and isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
    if _cached is None or _cached.provider is not provider:
        _cached = Tracing(provider)
    return _cached


def _import_api() -> Any:
    try:
        from opentelemetry import trace
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "tracing is on (tracing: true in the config) but opentelemetry-api is not installed; install "
            "minos-networks[otel], or set tracing: false",
            name=error.name,
        ) from error
    return trace


def periodic_run(name: str, scheduled_at: object) -> contextlib.AbstractContextManager[object]:
    """A span around one run of periodic task ``name`` (current while it runs), or nothing when off."""
    tracing = current()
    if tracing is None:
        return contextlib.nullcontext()
    return tracing.span(
        f"periodic {name}",
        {"minos.periodic.task": name, "minos.periodic.scheduled_at": str(scheduled_at)},
    )


class Tracing:
    """Spans and trace context for one tracer provider; what a component holds while tracing is on.

    Args:
        provider: The OpenTelemetry tracer provider to get the tracer from.
    """

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.provider = provider
        self.tracer = trace.get_tracer("minos.networks", tracer_provider=provider)
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._kind = SpanKind
        self._error = Status(StatusCode.ERROR)
        self._status = Status
        self._code = StatusCode

    # Trace context in headers.

    def extract(self, headers: Mapping[str, str]) -> Context:
        """The context ``headers`` carry (``traceparent``, ``tracestate``); an empty one without them."""
        return self._propagate.extract(headers)

    def inject(self, headers: dict[str, str], span: Span) -> dict[str, str]:
        """Write ``span``'s context into ``headers`` (replacing what they carried) and return them."""
        for name in TRACE_HEADERS:
            headers.pop(name, None)
        self._propagate.inject(headers, context=self._trace.set_span_in_context(span))
        return headers

    # Spans.

    def start(
        self,
        name: str,
        attributes: Mapping[str, Any],
        *,
        kind: str = "INTERNAL",
        parent: Span | Context | None = None,
    ) -> Span:
        """Start a span of ``kind`` (a ``SpanKind`` name) under ``parent``: a span, a context, or the current one."""
        if parent is not None and not isinstance(parent, dict):  # a Context is a dict
            parent = self._trace.set_span_in_context(parent)
        return self.tracer.start_span(
            name,
            context=parent,
            kind=self._kind[kind],
            attributes=dict(attributes),
        )

    def activate(self, span: Span) -> object:
        """Make ``span`` the current one in this context; give the token back to :meth:`deactivate`."""
        return self._context.attach(self._trace.set_span_in_context(span))

    def deactivate(self, token: object) -> None:
        """Undo the :meth:`activate` that gave ``token``."""
        self._context.detach(token)  # type: ignore[arg-type]

    def fail(self, span: Span, description: str, error: BaseException | None = None) -> None:
        """Mark ``span`` failed, saying why."""
        if error is not None:
            span.record_exception(error)
        span.set_status(self._status(self._code.ERROR, description))

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Any], *, kind: str = "INTERNAL") -> Iterator[Span]:
        """A span current while the block runs, failed with the exception that leaves the block."""
        span = self.start(name, attributes, kind=kind)
        token = self.activate(span)
        try:
            yield span
        except BaseException as error:
            self.fail(span, f"{type(error).__name__}: {error}", error)
            raise
        finally:
            self.deactivate(token)
            span.end()

    # Messaging.

    def message_attributes(self, message: BrokerMessage, operation: str) -> dict[str, Any]:
        """The messaging attributes of ``message`` for ``operation`` (publish, receive, process)."""
        attributes: dict[str, Any] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation": operation,
            "messaging.destination.name": message.topic,
            "messaging.message.id": str(message.identifier),
        }
        if message.reply_topic is not None:
            attributes["messaging.minos.reply_topic"] = message.reply_topic
        return attributes

    @contextlib.contextmanager
    def publishing(self, message: BrokerMessage) -> Iterator[BrokerMessage]:
        """A ``<topic> publish`` span, child of the current one, for the block sending the copy it yields.

        The copy carries the span's context in its headers; the span fails with the exception that
        leaves the block.
        """
        attributes = self.message_attributes(message, "publish")
        attributes["messaging.minos.strategy"] = message.strategy.name
        with self.span(f"{message.topic} publish", attributes, kind="PRODUCER") as span:
            payload = message.payload
            headers = self.inject(dict(payload.headers), span)
            yield BrokerMessageV1(
                message.topic,
                BrokerMessageV1Payload(payload.content, headers, payload.status),
                identifier=message.identifier,
                strategy=message.strategy,
                reply_topic=message.reply_topic,
            )

    def settle(self, span: Span, what: str) -> Any:
        """A broker settle callback that ends ``span``, failed if the broker refused ``what``."""

        def settled(error: BaseException | None) -> None:
            if error is not None:
                self.fail(span, f"the broker refused the {what}: {error}", error)
            span.end()

        return settled
