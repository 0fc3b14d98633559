"""`streamapp generate`: what it loads looks like the service wrote it, counters included."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from streamapp import migrate


def generate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "streamapp", "generate", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
async def migrated(empty_database: str) -> str:
    await asyncio.to_thread(migrate.upgrade, empty_database)
    return empty_database


async def test_generate_loads_processed_applications_with_their_users_and_events(
    migrated: str,
) -> None:
    result = generate(migrated, "--count", "1500", "--users", "7")

    assert result.returncode == 0, result.stderr
    assert "generated 1500 applications" in result.stderr
    connection = await asyncpg.connect(migrated)
    try:
        users = await connection.fetch("SELECT user_name, processed_count FROM users ORDER BY id")
        assert [u["user_name"] for u in users] == [f"user-{n}" for n in range(1, 8)]
        assert sum(u["processed_count"] for u in users) == 1500
        assert (
            await connection.fetchval(
                "SELECT count(*) FROM applications WHERE status = 'processed' "
                "AND processed_at > created_at"
            )
            == 1500
        )
        # One published outbox row per application, with the payload the API would send.
        assert (
            await connection.fetchval(
                "SELECT count(*) FROM outbox o JOIN applications a ON a.id = o.application_id "
                "WHERE o.published_at IS NOT NULL AND (o.payload->>'id')::int = a.id"
            )
            == 1500
        )
        totals = dict(await connection.fetch("SELECT name, value FROM totals"))
        assert totals == {"processed": 1500, "users": 7}
        ordered = await connection.fetchval(
            "SELECT bool_and(later.created_at >= earlier.created_at) FROM applications AS later "
            "JOIN applications AS earlier ON earlier.id = later.id - 1"
        )
        assert ordered
    finally:
        await connection.close()


async def test_generate_unprocessed_leaves_them_new_and_adds_to_existing_users(
    migrated: str,
) -> None:
    assert generate(migrated, "--count", "100", "--users", "3").returncode == 0

    result = generate(migrated, "--count", "50", "--users", "3", "--unprocessed")

    assert result.returncode == 0, result.stderr
    connection = await asyncpg.connect(migrated)
    try:
        assert await connection.fetchval("SELECT count(*) FROM users") == 3
        statuses = dict(
            await connection.fetch("SELECT status, count(*) FROM applications GROUP BY status")
        )
        assert statuses == {"processed": 100, "new": 50}
        assert await connection.fetchval("SELECT sum(processed_count) FROM users") == 100
    finally:
        await connection.close()


@pytest.mark.parametrize("args", [["--count", "0"], ["--count", "-5"], ["--count", "x"]])
def test_generate_rejects_a_count_below_one(migrated: str, args: list[str]) -> None:
    result = generate(migrated, *args)

    assert result.returncode == 2
    assert "--count" in result.stderr
