"""Prometheus metrics of this process (the API and each worker expose their own at /metrics)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

APPLICATIONS_CREATED = Counter(
    "streamapp_applications_created_total", "Applications stored by this API process"
)
EVENTS_PUBLISHED = Counter(
    "streamapp_events_published_total",
    "Outbox events acknowledged by the broker",
    ["path"],  # "fast": right after commit; "relay": retried later
)
EVENTS_REDELIVERED = Counter(
    "streamapp_events_redelivered_total",
    "Events re-sent because their application was still unprocessed long after publishing "
    "(the safety net: anything above zero is a bug)",
)
EVENT_SEND_FAILURES = Counter(
    "streamapp_event_send_failures_total", "Sends that failed or timed out (retried by the relay)"
)
REQUEST_SECONDS = Histogram(
    "streamapp_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
)
RECORDS_PROCESSED = Counter(
    "streamapp_records_processed_total", "Applications moved from new to processed"
)
RECORDS_ALREADY_PROCESSED = Counter(
    "streamapp_records_already_processed_total", "Redelivered records that changed nothing"
)
RECORDS_DEAD_LETTERED = Counter(
    "streamapp_records_dead_lettered_total", "Undecodable records sent to the dead-letter topic"
)


def exposition() -> tuple[bytes, str]:
    """Return the current metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
