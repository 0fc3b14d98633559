"""The worker's batch statement on a real PostgreSQL: what it moves and counts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from databases import Database

from streamapp import migrate
from streamapp.services.processing import mark_processed


@pytest.fixture
async def migrated(empty_database: str) -> str:
    await asyncio.to_thread(migrate.upgrade, empty_database)
    return empty_database


@pytest.fixture
async def database(migrated: str) -> AsyncIterator[Database]:
    db = Database(migrated)
    await db.connect()
    yield db
    await db.disconnect()


async def test_minutes_older_than_kept_are_processed_but_not_counted_per_minute(
    migrated: str, database: Database
) -> None:
    """A backlog hours deep moves and counts per user as ever, but adds no per-minute rows
    the pruning would delete (they are older than the two hours kept)."""
    now = datetime.now(UTC)
    old, recent = now - timedelta(hours=3), now - timedelta(minutes=1)
    name = f"m-{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(migrated)
    try:
        user_id = await connection.fetchval(
            "INSERT INTO users (user_name) VALUES ($1) RETURNING id", name
        )
        ids = [
            await connection.fetchval(
                "INSERT INTO applications (user_id, description, created_at) "
                "VALUES ($1, 'd', $2) RETURNING id",
                user_id,
                created_at,
            )
            for created_at in (old, old, recent)
        ]

        batch = await mark_processed(
            db=database,
            application_ids=ids,
            user_names=[name],
            user_minutes={(name, minute_of(old)), (name, minute_of(recent))},
        )

        assert batch.moved == frozenset(ids)
        assert batch.counts[name].processed == 3
        assert batch.minutes == {(name, minute_of(recent).timestamp()): 1}
        rows = await connection.fetch("SELECT minute, processed FROM processed_per_minute")
        assert [(row["minute"], row["processed"]) for row in rows] == [(minute_of(recent), 1)]
        statuses = await connection.fetch("SELECT DISTINCT status FROM applications")
        assert [row["status"] for row in statuses] == ["processed"]
    finally:
        await connection.close()


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
