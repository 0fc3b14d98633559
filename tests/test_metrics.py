"""The worker's batch histogram against prometheus_client's own Histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streamapp.metrics import LATENCY_BUCKETS, BatchHistogram

# Below the first bound, on bounds, between them, past the last one.
VALUES = [0.0, 0.001, 0.005, 0.0051, 0.3, 1.0, 7.5, 299.9, 300.0, 300.1, 4000.0]


def exposed(registry: CollectorRegistry) -> list[str]:
    """The registry's samples, without the creation time only prometheus_client adds."""
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_a_batch_is_exposed_as_prometheus_client_exposes_each_value() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("latency_seconds", "Latency", LATENCY_BUCKETS, registry=ours)
    reference = Histogram("latency_seconds", "Latency", buckets=LATENCY_BUCKETS, registry=theirs)

    batched.observe_many(VALUES[:4])
    batched.observe_many([])
    batched.observe_many(iter(VALUES[4:]))
    for value in VALUES:
        reference.observe(value)

    assert exposed(ours) == exposed(theirs)
    assert 'latency_seconds_bucket{le="0.005"} 3.0' in exposed(ours)
    assert "latency_seconds_count 11.0" in exposed(ours)
