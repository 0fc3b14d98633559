"""With OTEL_EXPORTER_OTLP_ENDPOINT set, one application's way is one trace, received by a
real OTLP/HTTP receiver: the POST's span, its statements, the send of its event, and the
worker's batch span linked to that send."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tools.stack.otlp import OtlpReceiver, ReceivedSpan
from tools.stack.processes import Api, Worker, child_env, wait_for

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP span kinds


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver().start()
    yield started
    started.stop()


def test_one_application_is_one_trace_from_its_post_to_its_batch(
    service_env: dict[str, str], receiver: OtlpReceiver
) -> None:
    env = child_env(
        **service_env,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="200",  # export every 0.2 s, not every 5 s
        OTEL_TRACES_SAMPLER="parentbased_always_on",  # this POST's trace, not one in twenty
    )
    api, worker = Api(env).start(), Worker(env).start()
    try:
        api.wait_ready()
        worker.wait_ready()
        worker.wait_holding_every_partition()
        body = {"user_name": f"traced-{uuid.uuid4().hex[:8]}", "description": "follow me"}
        created = httpx.post(f"{api.url}/applications", json=body, timeout=10)
        assert created.status_code == 201
        application_id = created.json()["id"]
        waited = httpx.get(
            f"{api.url}/applications/{application_id}", params={"wait": "20"}, timeout=30
        )
        assert waited.json()["status"] == "processed"

        post = wait_for(lambda: _post_span(receiver), timeout=20, message="no POST span")
        send = wait_for(lambda: _send_span(receiver, post), timeout=20, message="no send span")
        batch = wait_for(lambda: _batch_span(receiver, send), timeout=20, message="no batch")
    finally:
        api.stop()
        worker.stop()

    assert post.service == "streamapp-api"
    assert send.service == "streamapp-api"
    assert send.attributes["messaging.destination.name"] == "new_applications"
    assert send.attributes["streamapp.publish.path"] in ("fast", "relay")
    assert batch.service == "streamapp-worker"
    in_the_post = [s for s in receiver.snapshot() if s.trace_id == post.trace_id]
    assert any("db.system" in s.attributes or "db.system.name" in s.attributes for s in in_the_post)
    in_the_batch = [s for s in receiver.snapshot() if s.trace_id == batch.trace_id]
    assert any(s.parent_span_id == batch.span_id for s in in_the_batch)  # its UPDATE


def test_a_post_continues_the_trace_its_caller_samples_under_the_default_ratio(
    service_env: dict[str, str], receiver: OtlpReceiver
) -> None:
    env = child_env(
        **service_env, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="200"
    )
    trace_id, caller_span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    api = Api(env).start()
    try:
        api.wait_ready()
        body = {"user_name": f"called-{uuid.uuid4().hex[:8]}", "description": "in my trace"}
        headers = {"traceparent": f"00-{trace_id}-{caller_span_id}-01"}
        created = httpx.post(f"{api.url}/applications", json=body, headers=headers, timeout=10)
        assert created.status_code == 201
        post = wait_for(lambda: _post_span(receiver), timeout=20, message="no POST span")
    finally:
        api.stop()

    assert (post.trace_id, post.parent_span_id) == (trace_id, caller_span_id)


def _post_span(receiver: OtlpReceiver) -> ReceivedSpan | None:
    return next(
        (s for s in receiver.snapshot() if s.kind == SERVER and s.name == "POST /applications"),
        None,
    )


def _send_span(receiver: OtlpReceiver, post: ReceivedSpan) -> ReceivedSpan | None:
    """The send of the POST's event: a producer span in the POST's trace."""
    return next(
        (s for s in receiver.snapshot() if s.kind == PRODUCER and s.trace_id == post.trace_id),
        None,
    )


def _batch_span(receiver: OtlpReceiver, send: ReceivedSpan) -> ReceivedSpan | None:
    """The worker's batch that processed the event: a consumer span linked to its send."""
    return next(
        (
            s
            for s in receiver.snapshot()
            if s.kind == CONSUMER and (send.trace_id, send.span_id) in s.links
        ),
        None,
    )
