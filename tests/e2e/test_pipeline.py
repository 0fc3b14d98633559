"""POST -> record on the topic -> processed in PostgreSQL -> counted in the worker's table."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from tests.harness.effects import (
    TOPIC,
    event_id,
    processed_at,
    read_topic,
    user_count,
    wait_processed,
)
from tools.stack.processes import eventually


async def test_post_is_published_processed_and_counted(
    client: httpx.AsyncClient, pg: asyncpg.Pool, bootstrap_servers: str, start_worker, user_name
) -> None:
    worker = await asyncio.to_thread(start_worker)
    created = (
        await client.post("/applications", json={"user_name": user_name, "description": "go"})
    ).json()
    application_id = created["id"]

    records = await read_topic(bootstrap_servers, TOPIC, lambda r: event_id(r) == application_id)
    assert len(records) >= 1
    event = json.loads(records[0].value)
    assert records[0].key == user_name.encode()
    assert event["user_name"] == user_name
    assert event["user_id"] == created["application"]["user_id"]
    assert event["description"] == "go"

    await wait_processed(pg, [application_id])
    assert await pg.fetchval(
        "SELECT published_at IS NOT NULL FROM outbox WHERE (payload->>'id')::int = $1",
        application_id,
    )
    listed = (await client.get("/applications", params={"user_name": user_name})).json()
    assert listed["applications"][0]["status"] == "processed"
    await eventually(lambda: user_count(worker, user_name) == 1, timeout=20)
    async with httpx.AsyncClient() as worker_client:
        metrics = (await worker_client.get(f"{worker.url}/metrics/", timeout=5)).text
    processed = next(
        line
        for line in metrics.splitlines()
        if line.startswith("streamapp_records_processed_total")
    )
    assert float(processed.split()[-1]) >= 1


async def test_redelivered_records_change_nothing(
    client: httpx.AsyncClient, pg: asyncpg.Pool, bootstrap_servers: str, start_worker, user_name
) -> None:
    worker = await asyncio.to_thread(start_worker)
    ids = [
        (
            await client.post("/applications", json={"user_name": user_name, "description": d})
        ).json()["id"]
        for d in ("a", "b")
    ]
    await wait_processed(pg, ids)
    await eventually(lambda: user_count(worker, user_name) == 2, timeout=20)
    first_times = await processed_at(pg, ids)
    originals = await read_topic(bootstrap_servers, TOPIC, lambda r: event_id(r) in ids)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for _ in range(2):
            for record in originals:
                await producer.send_and_wait(TOPIC, record.value, key=record.key)
    finally:
        await producer.stop()
    marker = (
        await client.post("/applications", json={"user_name": user_name, "description": "after"})
    ).json()["id"]
    await wait_processed(pg, [marker])  # the redeliveries were consumed before this one

    assert await processed_at(pg, ids) == first_times
    # The marker is counted after the redeliveries (one user, one partition): they added none.
    await eventually(lambda: user_count(worker, user_name) >= 3, timeout=20)
    assert user_count(worker, user_name) == 3


async def test_undecodable_record_goes_to_dead_letter_topic(
    client: httpx.AsyncClient, pg: asyncpg.Pool, bootstrap_servers: str, start_worker, user_name
) -> None:
    await asyncio.to_thread(start_worker)
    garbage = f"not json {user_name}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, garbage, key=user_name.encode())
        await producer.send_and_wait(TOPIC, b'{"id": "seven"}', key=user_name.encode())
    finally:
        await producer.stop()

    dead = await read_topic(
        bootstrap_servers, f"{TOPIC}.dlq", lambda r: r.key == user_name.encode(), timeout=30
    )
    reasons = [json.loads(record.value)["reason"] for record in dead]
    assert any(reason.startswith("not JSON") for reason in reasons)
    after = (
        await client.post("/applications", json={"user_name": user_name, "description": "ok"})
    ).json()["id"]
    await wait_processed(pg, [after])


async def test_record_naming_no_stored_application_goes_to_dead_letter_topic(
    client: httpx.AsyncClient, pg: asyncpg.Pool, bootstrap_servers: str, start_worker, user_name
) -> None:
    worker = await asyncio.to_thread(start_worker)
    stranger = {
        "id": 2_000_000_000,
        "user_id": 1,
        "user_name": user_name,
        "description": "never stored",
        "created_at": "2026-11-27T10:00:00+00:00",
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, json.dumps(stranger).encode(), key=user_name.encode())
    finally:
        await producer.stop()

    dead = await read_topic(
        bootstrap_servers, f"{TOPIC}.dlq", lambda r: r.key == user_name.encode(), timeout=30
    )

    assert [json.loads(record.value)["reason"] for record in dead] == [
        "no application with id 2000000000"
    ]
    assert json.loads(json.loads(dead[0].value)["value"]) == stranger
    # Nothing was counted for it: the total still equals the processed rows, in one snapshot.
    counted, rows = await pg.fetchrow(
        "SELECT (SELECT value FROM totals WHERE name = 'processed'), "
        "(SELECT count(*) FROM applications WHERE status = 'processed')"
    )
    assert counted == rows
    after = (
        await client.post("/applications", json={"user_name": user_name, "description": "ok"})
    ).json()["id"]
    await wait_processed(pg, [after])
    await eventually(lambda: user_count(worker, user_name) == 1, timeout=20)
