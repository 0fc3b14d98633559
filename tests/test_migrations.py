"""Alembic migrations: up, down, up; the backfill from an original database; no drift."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from streamapp import migrate
from streamapp.models.tables import metadata

HEAD = "0009"
ORIGINAL_ROWS = [
    ("alice", "first", datetime(2024, 1, 2, 3, 4, 5)),
    ("bob", "second", datetime(2024, 1, 3, 0, 0, 0)),
    ("alice", "third", datetime(2024, 1, 4, 12, 30, 0)),
    ("Юрий", None, datetime(2024, 2, 1, 8, 0, 0)),
]


async def run_migration(url: str, revision: str, *, down: bool = False) -> None:
    action = migrate.downgrade if down else migrate.upgrade
    await asyncio.to_thread(action, url, revision)


async def tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        "SELECT tablename FROM pg_tables "
        "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    )
    return {row["tablename"] for row in rows}


async def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    await run_migration(empty_database, "head")
    await run_migration(empty_database, "base", down=True)
    connection = await asyncpg.connect(empty_database)
    try:
        assert await tables(connection) == set()
        await run_migration(empty_database, "head")
        assert await tables(connection) == {
            "applications",
            "users",
            "outbox",
            "totals",
            "processed_per_minute",
        }
        assert await connection.fetchval("SELECT version_num FROM alembic_version") == HEAD
    finally:
        await connection.close()


async def test_each_revision_downgrades_to_the_previous_schema(empty_database: str) -> None:
    connection = await asyncpg.connect(empty_database)
    try:
        all_three = {"applications", "users", "outbox"}
        for revision, expected in [
            ("0001", {"applications"}),
            ("0002", {"applications", "users"}),
            ("0003", all_three),
            ("0004", all_three),
            ("0005", {*all_three, "totals"}),
            ("0006", {*all_three, "totals"}),
        ]:
            await run_migration(empty_database, revision)
            before = await columns(connection)
            await run_migration(empty_database, "+1")
            await run_migration(empty_database, "-1", down=True)
            assert await tables(connection) == expected
            assert await columns(connection) == before
    finally:
        await connection.close()


async def columns(connection: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    rows = await connection.fetch(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, column_name"
    )
    return [tuple(row) for row in rows]


async def test_backfill_from_a_populated_original_database(empty_database: str) -> None:
    await run_migration(empty_database, "0001")
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.executemany(
            "INSERT INTO applications (user_name, description, created_at) VALUES ($1, $2, $3)",
            ORIGINAL_ROWS,
        )
        await run_migration(empty_database, "head")

        users = await connection.fetch("SELECT id, user_name FROM users ORDER BY id")
        assert [u["user_name"] for u in users] == ["alice", "bob", "Юрий"]
        migrated = await connection.fetch(
            "SELECT a.id, u.user_name, a.description, a.created_at, a.status "
            "FROM applications a JOIN users u ON u.id = a.user_id ORDER BY a.id"
        )
        assert [(r["user_name"], r["description"]) for r in migrated] == [
            (name, text) for name, text, _ in ORIGINAL_ROWS
        ]
        assert [r["created_at"].replace(tzinfo=None) for r in migrated] == [
            at for _, _, at in ORIGINAL_ROWS
        ]
        assert all(r["created_at"].utcoffset() is not None for r in migrated)
        assert {r["status"] for r in migrated} == {"processed"}

        await run_migration(empty_database, "0001", down=True)
        restored = await connection.fetch(
            "SELECT user_name, description, created_at FROM applications ORDER BY id"
        )
        assert [tuple(r) for r in restored] == ORIGINAL_ROWS
    finally:
        await connection.close()


async def test_original_service_database_can_be_stamped_and_upgraded(empty_database: str) -> None:
    connection = await asyncpg.connect(empty_database)
    try:
        # The table as the original service created it, with no Alembic history of ours.
        await connection.execute(
            "CREATE TABLE applications (id SERIAL PRIMARY KEY, user_name VARCHAR(25) NOT NULL, "
            "description VARCHAR(255), created_at TIMESTAMP DEFAULT now())"
        )
        await connection.execute(
            "INSERT INTO applications (user_name, description) VALUES ('carol', 'legacy')"
        )
        await asyncio.to_thread(command.stamp, migrate.alembic_config(empty_database), "0001")
        await run_migration(empty_database, "head")

        row = await connection.fetchrow(
            "SELECT u.user_name, a.description FROM applications a JOIN users u ON u.id = a.user_id"
        )
        assert tuple(row) == ("carol", "legacy")
    finally:
        await connection.close()


async def test_migrations_match_the_tables_in_code(empty_database: str) -> None:
    await run_migration(empty_database, "head")
    assert await schema_differences(empty_database) == []


async def schema_differences(url: str) -> list[object]:
    """What Alembic's autogenerate finds between the database and the tables in code."""
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        return list(compare_metadata(context, metadata))

    try:
        async with engine.connect() as connection:
            differences: list[object] = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    return differences


async def test_a_migration_stopped_by_its_lock_timeout_runs_again(empty_database: str) -> None:
    await run_migration(empty_database, "0004")
    holder = await asyncpg.connect(empty_database)
    try:
        # A long transaction writing to applications: 0005's index build on it waits for the
        # transaction, past the migrations' lock_timeout, after 0005's first part committed.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE applications IN ROW EXCLUSIVE MODE")
        with pytest.raises(Exception, match="lock timeout"):
            await run_migration(empty_database, "0005")
        await transaction.rollback()
        invalid = await holder.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        assert invalid == 1  # what the stopped build left behind

        await run_migration(empty_database, "head")  # simply run again

        assert await holder.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
        assert await holder.fetchval("SELECT version_num FROM alembic_version") == HEAD
    finally:
        await holder.close()
    assert await schema_differences(empty_database) == []


def test_alembic_cli_and_streamapp_migrate_both_work(empty_database: str) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DATABASE_URL": empty_database}
    bin_dir = Path(sys.executable).parent

    def run(*command: str) -> None:
        result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    run(str(bin_dir / "alembic"), "upgrade", "head")
    run(str(bin_dir / "alembic"), "downgrade", "-1")
    run(sys.executable, "-m", "streamapp", "migrate")
    run(sys.executable, "-m", "streamapp", "migrate", "base", "--down")
    run(sys.executable, "-m", "streamapp", "migrate", "head")


async def test_outbox_rows_learn_their_application(empty_database: str) -> None:
    await run_migration(empty_database, "0003")
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute("INSERT INTO users (user_name) VALUES ('dana')")
        await connection.execute("INSERT INTO applications (user_id, description) VALUES (1, 'x')")
        await connection.execute(
            "INSERT INTO outbox (topic, key, payload) VALUES "
            """('new_applications', 'dana', '{"id": 1}'), ('other', NULL, '{"id": "n/a"}')"""
        )

        await run_migration(empty_database, "head")

        rows = await connection.fetch("SELECT application_id, redeliveries FROM outbox ORDER BY id")
        assert [tuple(row) for row in rows] == [(1, 0), (None, 0)]
    finally:
        await connection.close()


async def test_counters_are_backfilled_and_kept(empty_database: str) -> None:
    await run_migration(empty_database, "0004")
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute("INSERT INTO users (user_name) VALUES ('ann'), ('ben')")
        await connection.execute(
            "INSERT INTO applications (user_id, description, status, processed_at) VALUES "
            "(1, 'a', 'processed', '2026-01-01T10:00:00Z'), "
            "(1, 'b', 'processed', '2026-01-02T10:00:00Z'), (1, 'c', 'new', NULL), "
            "(2, 'd', 'new', NULL)"
        )

        await run_migration(empty_database, "0005")

        rows = await connection.fetch(
            "SELECT user_name, processed_count, last_processed_at FROM users ORDER BY id"
        )
        assert [(r["user_name"], r["processed_count"]) for r in rows] == [("ann", 2), ("ben", 0)]
        assert rows[0]["last_processed_at"] == datetime.fromisoformat("2026-01-02T10:00:00+00:00")
        assert rows[1]["last_processed_at"] is None
        totals = dict(await connection.fetch("SELECT name, value FROM totals"))
        assert totals == {"processed": 2, "users": 2}
        await connection.execute("INSERT INTO users (user_name) VALUES ('cai')")
        assert await connection.fetchval("SELECT value FROM totals WHERE name = 'users'") == 3

        await run_migration(empty_database, "0004", down=True)
        assert "totals" not in await tables(connection)
        await connection.execute("INSERT INTO users (user_name) VALUES ('dee')")  # no trigger
    finally:
        await connection.close()


async def test_minute_counts_lose_and_regain_their_user_key_with_0009(
    empty_database: str,
) -> None:
    await run_migration(empty_database, "0009")
    connection = await asyncpg.connect(empty_database)
    count_for = "INSERT INTO processed_per_minute VALUES (now(), $1, 1)"
    try:
        user_id = await connection.fetchval(
            "INSERT INTO users (user_name) VALUES ('ann') RETURNING id"
        )
        await connection.execute(count_for, user_id)
        await connection.execute(count_for, user_id + 1000)  # no key checks it now
        await run_migration(empty_database, "0008", down=True)
        # The count of a user that does not exist is dropped, the other kept and checked.
        assert await connection.fetchval("SELECT array_agg(user_id) FROM processed_per_minute") == [
            user_id
        ]
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await connection.execute(count_for, user_id + 2000)
        await run_migration(empty_database, "0009")
        await connection.execute(count_for, user_id + 2000)
    finally:
        await connection.close()


async def test_outbox_traceparents_come_and_go_with_0008(empty_database: str) -> None:
    await run_migration(empty_database, "0008")
    connection = await asyncpg.connect(empty_database)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        await connection.execute(
            "INSERT INTO outbox (topic, key, payload, traceparent) VALUES ('t', 'k', '{}', $1)",
            traceparent,
        )
        assert await connection.fetchval("SELECT traceparent FROM outbox") == traceparent
        await run_migration(empty_database, "0007", down=True)
        assert await connection.fetchval("SELECT count(*) FROM outbox") == 1  # rows kept
        await run_migration(empty_database, "0008")
        assert await connection.fetchval("SELECT traceparent FROM outbox") is None
    finally:
        await connection.close()


async def test_outbox_request_ids_come_and_go_with_0006(empty_database: str) -> None:
    await run_migration(empty_database, "0006")
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute(
            "INSERT INTO outbox (topic, key, payload, request_id) VALUES ('t', 'k', '{}', 'r-1')"
        )
        await run_migration(empty_database, "0005", down=True)
        assert await connection.fetchval("SELECT count(*) FROM outbox") == 1  # rows kept
        await run_migration(empty_database, "0006")
        assert await connection.fetchval("SELECT request_id FROM outbox") is None
    finally:
        await connection.close()


async def test_per_minute_counts_are_backfilled_for_the_last_two_hours(
    empty_database: str,
) -> None:
    await run_migration(empty_database, "0006")
    connection = await asyncpg.connect(empty_database)
    try:
        await connection.execute("INSERT INTO users (user_name) VALUES ('eve'), ('fay')")
        await connection.execute(
            "INSERT INTO applications (user_id, description, status, created_at) VALUES "
            "(1, 'a', 'processed', date_trunc('minute', now()) - interval '5 minutes'), "
            "(1, 'b', 'processed', date_trunc('minute', now()) - interval '5 minutes' "
            "                      + interval '30 seconds'), "
            "(2, 'c', 'processed', date_trunc('minute', now()) - interval '5 minutes'), "
            "(2, 'd', 'new', date_trunc('minute', now())), "
            "(2, 'e', 'processed', now() - interval '3 hours')"
        )

        await run_migration(empty_database, "0007")

        rows = await connection.fetch(
            "SELECT minute = date_trunc('minute', now()) - interval '5 minutes' AS expected, "
            "user_id, processed FROM processed_per_minute ORDER BY user_id"
        )
        assert [tuple(row) for row in rows] == [(True, 1, 2), (True, 2, 1)]
        await run_migration(empty_database, "0006", down=True)
        assert "processed_per_minute" not in await tables(connection)
    finally:
        await connection.close()
