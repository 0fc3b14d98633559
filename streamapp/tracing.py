"""OpenTelemetry traces of an application's way: its POST, the send of its event, the
worker's batch.

On only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names an
OTLP/HTTP receiver; the SDK reads the other standard `OTEL_*` variables (headers, timeout,
sampler, resource attributes, `OTEL_SERVICE_NAME`). Off, nothing is instrumented and every
function here returns at its first line.

- The API's requests are spans (the API's TraceRequests middleware: the FastAPI
  instrumentation's middleware alone cost a seventh of a POST's CPU), their statements too
  (opentelemetry-instrumentation-asyncpg; a statement storing many POSTs' applications is in
  none of their traces). A POST's W3C `traceparent` is stored with its
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
import random
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from typing_extensions import override

logger = logging.getLogger(__name__)

TRACEPARENT_HEADER = "traceparent"
# The most records a batch span links to (OpenTelemetry's default limit is 128).
MAX_LINKS = 128
# Without OTEL_TRACES_SAMPLER: the share of new traces recorded. A recorded POST costs the
# API about 650 us of CPU more, more than a POST's own (docs/benchmarks.md, "Tracing's
# cost"): at one in ten that was a sixth of the API's CPU.
DEFAULT_RATIO = 0.05
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_tracer: trace.Tracer | None = None  # set by configure(): tracing is on
# The share of new traces (requests without a caller's trace, batches no sampled record
# links to) that are recorded: decided before any span is made, so the others cost nothing.
_ratio = 1.0


def enabled() -> bool:
    return _tracer is not None


def wanted() -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in _ENDPOINTS)


def configure(service_name: str) -> bool:
    """Export this process's spans over OTLP/HTTP if the environment asks; return whether."""
    global _tracer, _ratio
    if _tracer is not None or not wanted():
        return _tracer is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    sampler = default_sampler()
    _ratio = DEFAULT_RATIO if sampler is not None else 1.0
    provider = TracerProvider(resource=Resource.create({"service.name": name}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    statements_in_recorded_traces().instrument()
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
    else streamapp's: the share of new traces is drawn before their first span (starts()),
    spans follow their parent, and a statement outside any trace is not recorded."""
    if os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return None
    from opentelemetry.sdk.trace.sampling import ParentBased

    return ParentBased(root=roots_streamapp_starts())


def roots_streamapp_starts() -> Any:
    """A sampler of root spans: the requests' and batches' (streamapp made them only for the
    traces it decided to record), not a statement run outside any trace (the relay's polls:
    a trace of one query each). (The SDK is imported only with tracing on.)"""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class RootsStreamappStarts(Sampler):
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
            if kind == SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        @override
        def get_description(self) -> str:
            return "RootsStreamappStarts"

    return RootsStreamappStarts()


def statements_in_recorded_traces() -> Any:
    """The asyncpg instrumentation, for the statements of a recorded trace only. Outside one
    its span is dropped anyway, after costing a regex, the attributes and a span object per
    statement: a fourteenth of the API's CPU under POSTs (py-spy, one trace in ten recorded)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    class StatementsInRecordedTraces(AsyncPGInstrumentor):
        @override
        async def _do_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return await func(*args, **kwargs)
            return await super()._do_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

    return StatementsInRecordedTraces()  # type: ignore[no-untyped-call]


def starts(traceparents: Sequence[str | None] = ()) -> bool:
    """Whether to record a new trace: yes if one of `traceparents` (the caller's, or the
    sends a batch links to) is recorded, else one time in DEFAULT_RATIO."""
    if any(traceparent and _sampled(traceparent) for traceparent in traceparents):
        return True
    return _new_trace_recorded()


def _new_trace_recorded() -> bool:
    return _ratio >= 1.0 or random.random() < _ratio


def _sampled(traceparent: str) -> bool:
    """The sampled flag of a W3C traceparent (version-traceid-spanid-flags)."""
    try:
        return bool(int(traceparent[-2:], 16) & 1)
    except ValueError:
        return False


def records_request(traceparent: str | None) -> bool:
    """Whether to record the trace of a request (with the caller's traceparent, if any):
    decided before any span is made, so that the others cost a random draw."""
    if _tracer is None:
        return False
    return bool(traceparent and _sampled(traceparent)) or _new_trace_recorded()


@contextlib.contextmanager
def server_span(method: str, path: str, traceparent: str | None) -> Iterator[Span]:
    """The span of one HTTP request that records_request() chose, continuing the caller's
    trace if it sent one."""
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
    if _tracer is None or not trace.get_current_span().is_recording():
        return None  # no trace of this request is recorded
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
    """One span for a worker's batch, linked to the send span of each record that has one
    (recorded when one of those sends is, else as a new trace would be)."""
    if _tracer is None or not starts(traceparents):
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
