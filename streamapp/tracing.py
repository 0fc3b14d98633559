"""OpenTelemetry traces of an application's way: its POST, the send of its event, the
worker's batch.

On only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names an
OTLP/HTTP receiver; the SDK reads the other standard `OTEL_*` variables (headers, timeout,
sampler, resource attributes, `OTEL_SERVICE_NAME`). Off, nothing is instrumented and every
function here returns at its first line.

- The API's requests are spans (the API's TraceRequests middleware: the FastAPI
  instrumentation's middleware alone cost a seventh of a POST's CPU), their statements too
  (opentelemetry-instrumentation-asyncpg). A POST's W3C `traceparent` is stored with its
  outbox row.
- Each send of an event is a span in that trace (fast path or relay), and the record carries
  the send span's `traceparent` header.
- A worker's batch is one span, linked to the send span of each of its records (a batch has
  many parents), with its statements inside.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from typing_extensions import override

logger = logging.getLogger(__name__)

TRACEPARENT_HEADER = "traceparent"
# The most records a batch span links to (OpenTelemetry's default limit is 128).
MAX_LINKS = 128
# Without OTEL_TRACES_SAMPLER: the share of POSTs traced. Recording every one cost about
# half of a POST's throughput on two cores (the spans' export, and the worker's spans of
# one-record batches); one in ten costs a few percent (make bench, bench/tracing.py).
DEFAULT_RATIO = 0.1
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_tracer: trace.Tracer | None = None  # set by configure(): tracing is on


def enabled() -> bool:
    return _tracer is not None


def wanted() -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in _ENDPOINTS)


def configure(service_name: str) -> bool:
    """Export this process's spans over OTLP/HTTP if the environment asks; return whether."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}), sampler=default_sampler()
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    _tracer = trace.get_tracer("streamapp")
    logger.info("tracing on: spans of %s go over OTLP/HTTP", name)
    return True


def shutdown() -> None:
    """Send the spans still buffered (at the process's stop)."""
    provider = trace.get_tracer_provider()
    if _tracer is not None and hasattr(provider, "shutdown"):
        provider.shutdown()


def default_sampler() -> Any:
    """None (the SDK's sampler, from OTEL_TRACES_SAMPLER) when the environment names one;
    else streamapp's: one trace in DEFAULT_RATIO, and every batch linked to a sampled one."""
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return None
    from opentelemetry.sdk.trace.sampling import ParentBased

    return ParentBased(root=linked_or_ratio(DEFAULT_RATIO))


def linked_or_ratio(ratio: float) -> Any:
    """A sampler of root spans: sampled when one of their links is (a worker's batch of a
    sampled POST), else one in `ratio` by trace id. (The SDK is imported only with tracing
    on.)"""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    class LinkedOrRatio(Sampler):
        def __init__(self) -> None:
            self._ratio = TraceIdRatioBased(ratio)

        @override
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Sequence[Link] | None = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if any(link.context.trace_flags.sampled for link in links or ()):
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
            return self._ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        @override
        def get_description(self) -> str:
            return f"LinkedOrRatio{{{self._ratio.get_description()}}}"

    return LinkedOrRatio()


@contextlib.contextmanager
def server_span(method: str, path: str, traceparent: str | None) -> Iterator[Span]:
    """The span of one HTTP request, continuing the caller's trace if it sent one."""
    assert _tracer is not None, "tracing is off"
    parent = propagate.extract({TRACEPARENT_HEADER: traceparent}) if traceparent else None
    with _tracer.start_as_current_span(
        method,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    ) as span:
        yield span


def name_server_span(span: Span, method: str, route: str | None, status: int) -> None:
    """Name the request's span after its route (known once routed) and set its outcome."""
    if route is not None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def current_traceparent() -> str | None:
    """The W3C traceparent of the span in progress (the POST's), to store with its event."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT_HEADER)


def start_send(traceparent: str | None, topic: str, path: str) -> Span | None:
    """A span for one event's send, in the trace of the POST that queued it; None when
    tracing is off or the event has no trace. End it with end_send."""
    if _tracer is None or traceparent is None:
        return None
    parent = propagate.extract({TRACEPARENT_HEADER: traceparent})
    return _tracer.start_span(
        f"{topic} publish",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "streamapp.publish.path": path,
        },
    )


def traceparent_of(span: Span) -> str:
    """The traceparent that makes `span` the parent (or the link) of what follows."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier[TRACEPARENT_HEADER]


def end_send(span: Span, error: BaseException | None) -> None:
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, repr(error)))
    span.end()


@contextlib.contextmanager
def batch_span(topic: str, traceparents: Sequence[str | None]) -> Iterator[Span | None]:
    """One span for a worker's batch, linked to the send span of each record that has one."""
    if _tracer is None:
        yield None
        return
    links = []
    for traceparent in list(dict.fromkeys(t for t in traceparents if t))[:MAX_LINKS]:
        parent = propagate.extract({TRACEPARENT_HEADER: traceparent})
        context = trace.get_current_span(parent).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    with _tracer.start_as_current_span(
        f"{topic} process",
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": len(traceparents),
        },
    ) as span:
        yield span
