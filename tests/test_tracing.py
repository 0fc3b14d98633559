"""Tracing's switches and its sampler, without a receiver: on only when an OTLP endpoint is
named; a worker's batch is sampled whenever one of its records' sends was."""

from __future__ import annotations

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streamapp import tracing


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_the_sdk_enabled(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], wanted: bool
) -> None:
    for name in (*tracing._ENDPOINTS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.wanted() is wanted


SAMPLED_PARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
UNSAMPLED_PARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-00"


def test_off_every_hook_returns_at_once() -> None:
    assert not tracing.enabled()
    assert tracing.current_traceparent() is None
    assert not tracing.records_request(SAMPLED_PARENT)
    assert tracing.start_send("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "t", "fast") is None
    with tracing.batch_span("t", ["00-" + "1" * 32 + "-" + "2" * 16 + "-01"]) as span:
        assert span is None


def test_a_trace_is_recorded_when_a_parent_or_a_link_is_whatever_the_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_ratio", 0.0)
    assert tracing.starts([UNSAMPLED_PARENT, SAMPLED_PARENT])
    assert not tracing.starts([UNSAMPLED_PARENT, None])
    assert not tracing.starts()
    assert not tracing.starts(["not a traceparent"])
    monkeypatch.setattr(tracing, "_ratio", 1.0)
    assert tracing.starts()


def test_a_request_is_recorded_when_its_caller_samples_it_whatever_the_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_tracer", object())  # on, whatever the provider
    monkeypatch.setattr(tracing, "_ratio", 0.0)
    assert tracing.records_request(SAMPLED_PARENT)
    assert not tracing.records_request(UNSAMPLED_PARENT)
    assert not tracing.records_request("not a traceparent")
    assert not tracing.records_request(None)
    monkeypatch.setattr(tracing, "_ratio", 1.0)
    assert tracing.records_request(None)
    assert tracing.records_request(UNSAMPLED_PARENT)


def test_about_one_new_trace_in_twenty_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_ratio", tracing.DEFAULT_RATIO)
    recorded = sum(tracing.starts() for _ in range(20_000))
    assert 800 < recorded < 1_200


def test_the_root_sampler_records_requests_and_batches_but_not_stray_statements() -> None:
    roots = tracing.roots_streamapp_starts()
    assert roots.should_sample(None, 1, "POST /applications", SpanKind.SERVER).decision.is_sampled()
    assert roots.should_sample(None, 1, "batch", SpanKind.CONSUMER).decision.is_sampled()
    assert not roots.should_sample(None, 1, "SELECT", SpanKind.CLIENT).decision.is_sampled()


def test_the_environment_s_sampler_wins_over_streamapp_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    assert tracing.default_sampler() is None
    monkeypatch.delenv("OTEL_TRACES_SAMPLER")
    assert "RootsStreamappStarts" in tracing.default_sampler().get_description()


async def test_statements_make_spans_only_inside_a_recorded_trace(pg: asyncpg.Pool) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    instrumentor = tracing.statements_in_recorded_traces()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with pg.acquire() as connection:
            await connection.fetchval("SELECT 1")  # outside any trace: no span at all
            with provider.get_tracer("test").start_as_current_span("request"):
                await connection.fetchval("SELECT 2")
    finally:
        instrumentor.uninstrument()

    statements = [s for s in exported.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [s.attributes.get("db.statement") for s in statements] == ["SELECT 2"]
    assert statements[0].parent is not None
