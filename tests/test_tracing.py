"""Tracing's switches and its sampler, without a receiver: on only when an OTLP endpoint is
named; a worker's batch is sampled whenever one of its records' sends was."""

from __future__ import annotations

import pytest
from opentelemetry.trace import Link, SpanContext, TraceFlags

from streamapp import tracing

SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def link(sampled: bool) -> Link:
    flags = SAMPLED if sampled else TraceFlags(TraceFlags.DEFAULT)
    return Link(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags))


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


def test_off_every_hook_returns_at_once() -> None:
    assert not tracing.enabled()
    assert tracing.current_traceparent() is None
    assert tracing.start_send("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "t", "fast") is None
    with tracing.batch_span("t", ["00-" + "1" * 32 + "-" + "2" * 16 + "-01"]) as span:
        assert span is None


def test_a_batch_linked_to_a_sampled_send_is_sampled_whatever_the_ratio() -> None:
    never = tracing.linked_or_ratio(0.0)
    linked = never.should_sample(None, 0x1234, "batch", links=[link(False), link(True)])
    assert linked.decision.is_sampled()
    assert not never.should_sample(None, 0x1234, "batch", links=[link(False)]).decision.is_sampled()
    always = tracing.linked_or_ratio(1.0)
    assert always.should_sample(None, 0x1234, "POST /applications").decision.is_sampled()


def test_the_environment_s_sampler_wins_over_streamapp_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    assert tracing.default_sampler() is None
    monkeypatch.delenv("OTEL_TRACES_SAMPLER")
    assert "LinkedOrRatio" in tracing.default_sampler().get_description()
