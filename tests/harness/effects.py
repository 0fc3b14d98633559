"""Driving the service and reading its effects back: PostgreSQL rows, topic records, tables."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from streamapp.connections import KafkaConnection
from streamapp.stream.topics import DEAD_LETTERS, NEW_APPLICATIONS

TOPIC = NEW_APPLICATIONS
DLQ = DEAD_LETTERS


async def post_applications(
    client: httpx.AsyncClient, user_names: list[str], count: int
) -> list[int]:
    """File `count` applications spread over `user_names`; return their ids."""

    async def post(index: int) -> int:
        response = await client.post(
            "/applications",
            json={"user_name": user_names[index % len(user_names)], "description": f"#{index}"},
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    ids: list[int] = []
    for start in range(0, count, 50):
        ids += await asyncio.gather(*(post(i) for i in range(start, min(start + 50, count))))
    return ids


async def wait_processed(pg: asyncpg.Pool, ids: list[int], timeout: float = 90.0) -> None:
    """Wait until every application in `ids` is processed in PostgreSQL."""
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = await pg.fetchval(
            "SELECT count(*) FROM applications WHERE id = ANY($1) AND status = 'processed'", ids
        )
        if done == len(ids):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"only {done} of {len(ids)} applications processed in {timeout}s")


async def processed_at(pg: asyncpg.Pool, ids: list[int]) -> dict[int, Any]:
    rows = await pg.fetch("SELECT id, processed_at FROM applications WHERE id = ANY($1)", ids)
    return {row["id"]: row["processed_at"] for row in rows}


async def read_topic(
    kafka: KafkaConnection | str, topic: str, match: Any, timeout: float = 30.0, count: int = 1
) -> list[Any]:
    """Read `topic` from the start with an independent consumer; return records where match().

    Returns once `count` records matched (or the time is up).
    """
    options = KafkaConnection.of(kafka).client_options()
    consumer = AIOKafkaConsumer(topic, **options, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < count:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                found += [record for record in records if match(record)]
    finally:
        await consumer.stop()
    return found


def event_id(record: Any) -> int | None:
    """The application id of a record on the topic; None for records that are not events
    (the bad-record tests put any bytes there)."""
    value = json_value(record)
    return value.get("id") if isinstance(value, dict) else None


def json_value(record: Any) -> Any:
    try:
        return json.loads(record.value)
    except ValueError:
        return None


def user_count(worker: Any, user_name: str) -> int | None:
    """The user's processed count in the worker's table; None while it answers 503."""
    response = httpx.get(f"{worker.url}/stats/users/{user_name}/", timeout=5)
    if response.status_code == 503:
        return None
    response.raise_for_status()
    return int(response.json()["processed"])
