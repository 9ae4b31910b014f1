"""Test helpers for tracing: an OpenTelemetry SDK provider whose finished spans the test can wait for."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from minos.networks import tracing


class Spans(SimpleSpanProcessor):
    """Exports finished spans to an ``InMemorySpanExporter`` and wakes whoever waits for some."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        super().__init__(self.exporter)
        self._condition = threading.Condition()

    def on_end(self, span: ReadableSpan) -> None:
        super().on_end(span)
        with self._condition:
            self._condition.notify_all()

    @property
    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def wait_for(
        self, predicate: Callable[[list[ReadableSpan]], bool], timeout: float = 10.0
    ) -> list[ReadableSpan]:
        """The finished spans once ``predicate`` holds for them; fails after ``timeout`` seconds."""
        with self._condition:
            if not self._condition.wait_for(lambda: predicate(self.finished), timeout):
                names = [span.name for span in self.finished]
                raise AssertionError(f"the spans never matched within {timeout} s; finished: {names}")
        return self.finished

    async def wait_named(self, *names: str, timeout: float = 10.0) -> dict[str, ReadableSpan]:
        """Wait (off the loop) until a span of each name has finished; the last of each name."""
        import asyncio

        def all_there(spans: list[ReadableSpan]) -> bool:
            return set(names) <= {span.name for span in spans}

        spans = await asyncio.to_thread(self.wait_for, all_there, timeout)
        return {span.name: span for span in spans}


@contextmanager
def recording() -> Iterator[Spans]:
    """Tracing on with an SDK provider of its own (not the global one) for the block; off again after."""
    spans = Spans()
    provider = TracerProvider()
    provider.add_span_processor(spans)
    tracing.configure(tracer_provider=provider)
    try:
        yield spans
    finally:
        tracing.configure(None)
        provider.shutdown()


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def ids(traceparent: str) -> tuple[int, int]:
    """The trace id and the parent span id a ``traceparent`` header names."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def context_of(span: ReadableSpan) -> tuple[int, int]:
    """The trace id and the span id of ``span``, to compare with :func:`ids`."""
    return span.context.trace_id, span.context.span_id
