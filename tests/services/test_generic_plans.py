"""The API's connections plan each statement once (streamapp.db.GENERIC_PLANS), and a plan
lasts until its tables' statistics change. So every statement the API runs must plan to index
look-ups and ranges whatever the planner guesses: on a new, empty database (where a scan is
cheapest, and the plan made then would be kept as the tables grow) as on a large one. A
generic plan guesses a third of the rows for `id < $1` and a tenth for `LIMIT $2`: a listing
that joined its page's rows instead of looking each up read all applications by hash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from streamapp import migrate
from streamapp.config import load_settings
from streamapp.db import GENERIC_PLANS, create_database
from streamapp.services import applications, dashboard, outbox, users
from streamapp.services.generator import Plan, generate
from streamapp.services.paging import NEWEST
from tests.harness.postgres import PostgresServer

APPLICATIONS = 200_000
USERS = 1_000
LARGE_TABLES = {"applications", "users", "outbox", "processed_per_minute"}
NOW = "extract(epoch FROM now())::float8"

# Each statement the API runs with arguments for it (SQL literals); the statements that read
# a table in full by design, and which table.
STATEMENTS: dict[str, tuple[str, str]] = {
    "create": (
        applications._CREATE_SQL,
        "ARRAY['user-0007'], ARRAY['d'], ARRAY[NULL], ARRAY[NULL], ARRAY['r'], "
        "'new_applications', ARRAY[NULL]",
    ),
    "by idempotency key": (applications._BY_IDEMPOTENCY_KEY_SQL, "'key'"),
    "page 1": (applications.PAGE_OF_ALL_SQL, f"{NEWEST}, 10, 0"),
    "a deep page by number": (applications.PAGE_OF_ALL_SQL, f"{NEWEST}, 10, 50000"),
    "one user's page by id": (applications._PAGE_BY_USER_ID_SQL, f"{NEWEST}, 10, 0, 7"),
    "one user's page by name": (
        applications._PAGE_BY_USER_NAME_SQL,
        f"{NEWEST}, 10, 0, 'user-0007'",
    ),
    "users' page": (users._PAGE_SQL, f"{NEWEST}, 10, 0"),
    "outbox claim": (outbox._CLAIM_SQL, "0.5, 500"),
    "outbox backlog": (outbox._BACKLOG_SQL, ""),
    "outbox published": (outbox._MARK_PUBLISHED_SQL, "ARRAY[1, 2, 3]::bigint[]"),
    "outbox prune": (outbox._PRUNE_SQL, "3600, 10000"),
    "outbox redelivery": (outbox._REDELIVER_SQL, "300, 1000"),
    "dashboard latest": (dashboard._LATEST_SQL, ""),
    "dashboard users": (dashboard._USERS_SQL, ""),
    "dashboard minutes": (dashboard._MINUTES_SQL, f"{NOW} - 3600"),
}
# No index orders published rows by age; the per-minute counts read are half of those kept.
SCANNED_BY_DESIGN = {"outbox prune": "outbox", "dashboard minutes": "processed_per_minute"}


@pytest.fixture(scope="module", params=["empty", "large"])
async def database(
    request: pytest.FixtureRequest, postgres: PostgresServer
) -> AsyncIterator[asyncpg.Connection]:
    """A new database, migrated: empty and never analyzed, or large and analyzed."""
    url = await postgres.create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    if request.param == "large":
        await _populate(url)
    connection = await asyncpg.connect(url, server_settings=GENERIC_PLANS)
    yield connection
    await connection.close()
    await postgres.drop_database(url)


@pytest.mark.parametrize("name", list(STATEMENTS))
async def test_every_statement_plans_to_index_look_ups(
    name: str, database: asyncpg.Connection
) -> None:
    plan = await _generic_plan(database, *STATEMENTS[name])
    read_in_full = {table for scan, table in _scans(plan) if scan == "Seq Scan"}
    assert read_in_full <= {SCANNED_BY_DESIGN.get(name)}
    assert not list(_joined_by_hash_or_merge(plan))


async def test_only_the_api_pool_plans_so(database_url: str) -> None:
    settings = load_settings(database_url=database_url, _env_file=None)
    defaults = {"plan_cache_mode": "auto", "enable_seqscan": "on"}
    for generic_plans, expected in ((True, GENERIC_PLANS), (False, defaults)):
        db = create_database(settings, generic_plans=generic_plans)
        await db.connect()
        try:
            assert {name: await db.fetch_val(f"SHOW {name}") for name in defaults} == expected
        finally:
            await db.disconnect()


async def _populate(url: str) -> None:
    """Tables at the size a busy day leaves them, analyzed."""
    await generate(url, Plan(count=APPLICATIONS, users=USERS, prefix="user"))
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """
            INSERT INTO outbox (topic, key, payload, application_id, created_at, published_at)
            SELECT 'new_applications', 'k', '{}', n, now() - n * interval '10 ms',
                   CASE WHEN n > 100 THEN now() - n * interval '10 ms' END
            FROM generate_series(1, $1) AS n
            """,
            APPLICATIONS,
        )
        await connection.execute(
            """
            INSERT INTO processed_per_minute (minute, user_id, processed)
            SELECT date_trunc('minute', now()) - m * interval '1 minute', u, 1
            FROM generate_series(0, 119) AS m, generate_series(1, $1) AS u
            ON CONFLICT DO NOTHING
            """,
            USERS,
        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def _generic_plan(connection: asyncpg.Connection, sql: str, arguments: str) -> Any:
    await connection.execute(f"PREPARE statement AS {sql}")
    try:
        execute = f"EXECUTE statement({arguments})" if arguments else "EXECUTE statement"
        return json.loads(await connection.fetchval(f"EXPLAIN (FORMAT JSON) {execute}"))[0]["Plan"]
    finally:
        await connection.execute("DEALLOCATE statement")


def _scans(node: dict[str, Any], *, of_subplans: bool = True) -> Iterator[tuple[str, str]]:
    """Each read of a large table in the plan (optionally not counting those of its
    subplans and CTEs, run apart from it): the kind of scan, the table."""
    if node.get("Relation Name") in LARGE_TABLES and node["Node Type"] != "ModifyTable":
        yield node["Node Type"], node["Relation Name"]
    for child in node.get("Plans", []):
        if of_subplans or child.get("Parent Relationship") not in {"InitPlan", "SubPlan"}:
            yield from _scans(child, of_subplans=of_subplans)


def _joined_by_hash_or_merge(node: dict[str, Any]) -> Iterator[str]:
    """The large tables read into a hash or merge join: read whole, where a look-up of the
    few rows needed joins by nested loop."""
    for child in node.get("Plans", []):
        if node["Node Type"] in {"Hash Join", "Merge Join"} and child.get(
            "Parent Relationship"
        ) in {"Outer", "Inner"}:
            yield from (f"{scan} on {table}" for scan, table in _scans(child, of_subplans=False))
        yield from _joined_by_hash_or_merge(child)
