"""Prometheus metrics of this process (the API and each worker expose their own at /metrics)."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from math import inf

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from typing_extensions import override

# Seconds, from a few milliseconds (a record processed at once) to minutes (a backlog).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

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
OUTBOX_BACKLOG = Gauge(
    "streamapp_outbox_backlog", "Outbox events not yet acknowledged by the broker (at scrape)"
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "streamapp_outbox_oldest_unpublished_seconds",
    "Age of the oldest outbox event not yet acknowledged (0 when there is none; at scrape)",
)
PUBLISH_SECONDS = Histogram(
    "streamapp_publish_seconds",
    "From an application's commit to the broker's acknowledgement of its event",
    ["path"],
    buckets=LATENCY_BUCKETS,
)
REQUEST_SECONDS = Histogram(
    "streamapp_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
)
REQUESTS_SHED = Counter(
    "streamapp_requests_shed_total",
    "Requests answered 503 at once because the API was at capacity",
    ["reason"],  # "queue": no turn within API_QUEUE_TIMEOUT; "pool": no connection in time
)
for _reason in ("queue", "pool"):  # both at 0 from the start, so rate() sees the first one
    REQUESTS_SHED.labels(_reason)
RECORDS_PROCESSED = Counter(
    "streamapp_records_processed_total", "Applications moved from new to processed"
)
RECORDS_ALREADY_PROCESSED = Counter(
    "streamapp_records_already_processed_total", "Redelivered records that changed nothing"
)
RECORDS_DEAD_LETTERED = Counter(
    "streamapp_records_dead_lettered_total",
    "Records sent to the dead-letter topic (undecodable, or naming no application)",
)
BATCH_SECONDS = Histogram(
    "streamapp_batch_duration_seconds",
    "One batch of the worker: decoding, the UPDATE, table writes and dead letters",
    buckets=LATENCY_BUCKETS,
)


class BatchHistogram(Collector):
    """A histogram observed a batch of values at a time.

    prometheus_client's Histogram takes its locks for every value: observing each record of
    a backlog that way cost a worker a twentieth of its time per record. This one counts a
    batch's values into buckets first and adds them under one lock. Exposed like any other
    histogram (`_bucket`, `_sum`, `_count`).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = [*map(float, buckets), inf]
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Observe each of the values."""
        counts = [0] * len(self._bounds)
        total = 0.0
        bounds = self._bounds
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # the first bound >= value: its `le`
            total += value
        with self._lock:
            self._counts = [old + new for old, new in zip(self._counts, counts, strict=True)]
            self._sum += total

    @override
    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == inf else repr(bound), cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


END_TO_END_SECONDS = BatchHistogram(
    "streamapp_end_to_end_seconds",
    "From an application's created_at to its processing by this worker",
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "streamapp_consumer_lag",
    "Records of a new_applications partition this worker owns and has not read (at scrape)",
    ["partition"],
)


def exposition() -> tuple[bytes, str]:
    """Return the current metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
