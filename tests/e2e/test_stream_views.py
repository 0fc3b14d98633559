"""The stream's state on the workers' web views agrees with PostgreSQL: per user, and per
minute for the whole cluster from any worker, after a crash between the UPDATE and the
changelog write, and after a worker's partitions moved to another."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from databases import Database

from streamapp.services.processing import mark_processed
from tests.harness.effects import post_applications, wait_processed
from tests.harness.isolated import Isolated, isolated_services
from tests.harness.postgres import PostgresServer
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import Worker, eventually, http_json, split_between

PARTITIONS = 4

_MINUTES_SQL = """
SELECT date_bin('1 minute', created_at, timestamptz 'epoch') AS minute, count(*) AS n
FROM applications
WHERE status = 'processed' AND created_at >= date_trunc('minute', now()) - interval '59 minutes'
GROUP BY 1
"""


@pytest.fixture
async def isolated(postgres: PostgresServer, own_kafka: ApacheKafka) -> AsyncIterator[Isolated]:
    async with isolated_services(
        postgres, own_kafka, TOPIC_PARTITIONS=str(PARTITIONS), LOG_LEVEL="INFO"
    ) as setup:
        yield setup


async def postgres_minutes(setup: Isolated) -> dict[str, int]:
    rows = await setup.pg.fetch(_MINUTES_SQL)
    return {iso_minute(row["minute"]): row["n"] for row in rows}


def iso_minute(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def cluster_minutes(worker: Worker) -> tuple[dict[str, int], int] | None:
    """The non-zero minutes of /stats/minutes/ and how many workers answered (None: 503)."""
    response = httpx.get(f"{worker.url}/stats/minutes/", timeout=10)
    if response.status_code == 503:
        return None
    response.raise_for_status()
    body = response.json()
    assert len(body["minutes"]) == 60
    return {m["minute"]: m["processed"] for m in body["minutes"] if m["processed"]}, body["workers"]


async def user_rows(setup: Isolated, names: list[str]) -> dict[str, dict[str, Any]]:
    rows = await setup.pg.fetch(
        "SELECT user_name, processed_count, last_processed_at FROM users WHERE user_name = ANY($1)",
        names,
    )
    return {
        row["user_name"]: {
            "processed": row["processed_count"],
            "last_processed_at": row["last_processed_at"].isoformat(),
        }
        for row in rows
    }


def user_stats(worker: Worker, name: str) -> dict[str, Any]:
    body = http_json(f"{worker.url}/stats/users/{name}/", timeout=10)
    return {"processed": body["processed"], "last_processed_at": body["last_processed_at"]}


async def test_every_worker_answers_the_clusters_minutes_and_users_as_postgres_has_them(
    isolated: Isolated,
) -> None:
    users = [f"v-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    async with isolated.api_client() as client:
        # A crash after the batch's UPDATE committed and before its changelog writes: the
        # applications are processed in PostgreSQL while their records are not committed.
        crashed = await post_applications(client, users[:4], 40)
        database = Database(isolated.env["DATABASE_URL"])
        await database.connect()
        try:
            await mark_processed(db=database, application_ids=crashed, user_names=users[:4])
        finally:
            await database.disconnect()

        workers = [isolated.start_worker(), isolated.start_worker()]
        for worker in workers:
            await asyncio.to_thread(worker.wait_ready)
        await eventually(lambda: split_between(workers), 90, message="no split")
        # Only the redelivered records can set the crashed users' rows right: nothing else
        # of theirs is processed.
        ids = crashed + await post_applications(client, users[4:], 300)
        await wait_processed(isolated.pg, ids)

    expected = await postgres_minutes(isolated)
    assert sum(expected.values()) == 340
    for worker in workers:
        await eventually(
            lambda w=worker: cluster_minutes(w) == (expected, 2),
            timeout=30,
            message=f"{worker.name}: {cluster_minutes(worker)} != {expected}",
        )
    stored = await user_rows(isolated, users)
    for worker in workers:
        for name in users:
            assert user_stats(worker, name) == stored[name], name

    # Each worker's part covers its own partitions; together, every partition once.
    parts = [http_json(f"{w.url}/stats/minutes/local/") for w in workers]
    assert sorted(p for part in parts for p in part["partitions"]) == list(range(PARTITIONS))

    # One worker stops: the other takes its partitions and recovers their rows from the
    # changelogs, and answers the same.
    workers[0].stop(signal.SIGTERM)
    survivor = workers[1]
    await eventually(lambda: split_between([survivor]), 90, message="no takeover")
    await eventually(
        lambda: cluster_minutes(survivor) == (expected, 1),
        timeout=60,
        message=f"after the takeover: {cluster_minutes(survivor)} != {expected}",
    )
    for name in users:
        assert user_stats(survivor, name) == stored[name], name
