"""Every metric the README names, read from /metrics after it should have moved: the API's
(in-process, on the session's PostgreSQL and Kafka) and a worker's."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from tests.harness.effects import TOPIC, post_applications, wait_processed
from tests.harness.metrics import samples, total
from tools.stack.processes import Worker, eventually


async def scrape_api(client: httpx.AsyncClient) -> dict[tuple[str, Any], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return samples(response.text)


def scrape_worker(worker: Worker) -> dict[tuple[str, Any], float]:
    with urllib.request.urlopen(f"{worker.url}/metrics/", timeout=5) as response:
        return samples(response.read().decode())


async def test_api_and_worker_metrics_move(
    client: httpx.AsyncClient,
    pg: asyncpg.Pool,
    running_worker: Worker,
    bootstrap_servers: str,
    user_name: str,
) -> None:
    api_before, worker_before = await scrape_api(client), scrape_worker(running_worker)

    ids = await post_applications(client, [user_name], 20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"not json", key=user_name.encode())
    finally:
        await producer.stop()
    await wait_processed(pg, ids)

    def moved(name: str, by: float, **labels: str) -> bool:
        after = scrape_worker(running_worker)
        return total(after, name, **labels) - total(worker_before, name, **labels) >= by

    api_after = await scrape_api(client)
    for name, by in [
        ("streamapp_applications_created_total", 20),
        ("streamapp_events_published_total", 20),
        ("streamapp_publish_seconds_count", 20),
        ("streamapp_http_request_duration_seconds_count", 20),
    ]:
        assert total(api_after, name) - total(api_before, name) >= by, name
    for name, by in [
        ("streamapp_records_processed_total", 20),
        ("streamapp_end_to_end_seconds_count", 20),
        ("streamapp_batch_duration_seconds_count", 1),
        ("streamapp_records_dead_lettered_total", 1),
    ]:
        await eventually(lambda n=name, b=by: moved(n, b), timeout=30, message=name)
    lags = [ls for (n, ls) in scrape_worker(running_worker) if n == "streamapp_consumer_lag"]
    assert sorted(dict(ls)["partition"] for ls in lags) == [str(p) for p in range(6)]


async def test_outbox_backlog_and_its_age_are_measured_at_each_scrape(
    client: httpx.AsyncClient, pg: asyncpg.Pool
) -> None:
    """A row queued behind the API's back shows in the gauges until the relay (after its
    OUTBOX_RELAY_DELAY of 1 s) has sent it."""
    await pg.execute(
        "INSERT INTO outbox (topic, key, payload) VALUES ('new_applications', 'm', $1)",
        json.dumps({"id": 0}),  # dead-lettered by whichever worker reads it
    )
    queued = await scrape_api(client)

    assert total(queued, "streamapp_outbox_backlog") >= 1
    assert 0 < total(queued, "streamapp_outbox_oldest_unpublished_seconds") < 60

    async def drained() -> bool:
        after = await scrape_api(client)
        return total(after, "streamapp_outbox_backlog") == 0

    for _ in range(100):
        if await drained():
            break
        await asyncio.sleep(0.2)
    assert await drained()
    assert total(await scrape_api(client), "streamapp_outbox_oldest_unpublished_seconds") == 0
