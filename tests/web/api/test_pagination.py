"""Listings: cursors and pages agree, totals come from counters, no query scans applications."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from streamapp import migrate
from streamapp.models.schemas import ApplicationsPage, UsersPage
from streamapp.services import applications as applications_service
from streamapp.services import processing
from streamapp.services import users as users_service
from streamapp.services.generator import Plan, generate
from tests.harness.postgres import PostgresServer


async def create(client: httpx.AsyncClient, user_name: str, description: str) -> int:
    response = await client.post(
        "/applications", json={"user_name": user_name, "description": description}
    )
    assert response.status_code == 201
    return int(response.json()["id"])


async def walk(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; return every page's body."""
    pages = [(await client.get(path, params=params)).json()]
    while pages[-1]["next_cursor"] is not None:
        cursor = pages[-1]["next_cursor"]
        pages.append((await client.get(path, params={**params, "cursor": cursor})).json())
    return pages


async def test_cursor_walk_lists_every_application_once_newest_first(
    client: httpx.AsyncClient, user_name: str
) -> None:
    ids = [await create(client, user_name, f"n{i}") for i in range(7)]

    pages = await walk(client, "/applications", user_name=user_name, size=3)

    listed = [a["id"] for page in pages for a in page["applications"]]
    assert listed == sorted(ids, reverse=True)
    assert [len(page["applications"]) for page in pages] == [3, 3, 1]
    assert [page["page"] for page in pages] == [1, None, None]
    assert all(page["total"] == 7 for page in pages)


async def test_pages_and_cursors_give_the_same_rows(
    client: httpx.AsyncClient, user_name: str
) -> None:
    for i in range(5):
        await create(client, user_name, f"n{i}")

    by_cursor = await walk(client, "/applications", user_name=user_name, size=2)
    by_page = [
        (
            await client.get("/applications", params={"user_name": user_name, "size": 2, "page": n})
        ).json()
        for n in (1, 2, 3)
    ]

    assert [p["applications"] for p in by_page] == [p["applications"] for p in by_cursor]
    assert [p["next_cursor"] is None for p in by_page] == [False, False, True]


async def test_exactly_full_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, user_name: str
) -> None:
    for i in range(4):
        await create(client, user_name, f"n{i}")

    pages = await walk(client, "/applications", user_name=user_name, size=2)

    assert len(pages) == 2


async def test_user_applications_walk_with_cursors(
    client: httpx.AsyncClient, user_name: str
) -> None:
    ids = [await create(client, user_name, f"n{i}") for i in range(3)]
    user_id = (await client.get(f"/applications/{ids[0]}")).json()["user_id"]

    pages = await walk(client, f"/users/{user_id}/applications", size=2)

    assert [a["id"] for page in pages for a in page["applications"]] == ids[::-1]
    assert pages[0]["total"] == 3


async def test_users_listing_walks_with_cursors_and_counts_users(
    client: httpx.AsyncClient, pg: asyncpg.Pool
) -> None:
    pages = await walk(client, "/users", size=50)

    listed = [user["id"] for page in pages for user in page["users"]]
    assert listed == sorted(listed, reverse=True)
    assert len(listed) == len(set(listed))
    assert pages[0]["total"] == await pg.fetchval("SELECT count(*) FROM users") == len(listed)


async def test_total_counts_processed_and_new_applications(
    api: Any, client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    ids = [await create(client, user_name, f"n{i}") for i in range(3)]
    before = (await client.get("/applications", params={"size": 1})).json()["total"]
    # What a worker's batch does: mark two processed, counters included.
    await processing.mark_processed(
        db=api.state.db,
        application_ids=ids[:2],
        user_names=[user_name],
    )

    mine = (await client.get("/applications", params={"user_name": user_name})).json()
    everyone = (await client.get("/applications", params={"size": 1})).json()

    assert mine["total"] == 3
    assert everyone["total"] == before
    assert everyone["total"] == await pg.fetchval("SELECT count(*) FROM applications")
    assert await pg.fetchval(
        "SELECT processed_count FROM users WHERE user_name = $1", user_name
    ) == await pg.fetchval(
        "SELECT count(*) FROM applications a JOIN users u ON u.id = a.user_id "
        "WHERE u.user_name = $1 AND a.status = 'processed'",
        user_name,
    )


@pytest.mark.parametrize("cursor", ["not-a-cursor", "0", "-5", "5!", "1" * 19, " 5"], ids=repr)
async def test_bad_cursor_is_422_naming_the_field(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/applications", params={"cursor": cursor})

    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["cursor"]


async def test_a_page_with_a_cursor_counts_from_the_cursor(
    client: httpx.AsyncClient, user_name: str
) -> None:
    ids = [await create(client, user_name, f"n{i}") for i in range(7)]
    newest_first = sorted(ids, reverse=True)
    params: dict[str, Any] = {"user_name": user_name, "size": 2, "cursor": str(newest_first[0])}

    second = (await client.get("/applications", params={**params, "page": 2})).json()
    alone = (await client.get("/applications", params=params)).json()

    assert [a["id"] for a in second["applications"]] == newest_first[3:5]
    assert second["page"] == 2
    assert [a["id"] for a in alone["applications"]] == newest_first[1:3]
    assert alone["page"] is None


async def test_a_cursor_beyond_every_id_starts_at_the_newest(
    client: httpx.AsyncClient, user_name: str
) -> None:
    ids = [await create(client, user_name, f"n{i}") for i in range(2)]
    params = {"user_name": user_name, "cursor": "9" * 18}

    body = (await client.get("/applications", params=params)).json()

    assert [a["id"] for a in body["applications"]] == sorted(ids, reverse=True)


@pytest.fixture(scope="module")
async def populated(postgres: PostgresServer) -> AsyncIterator[str]:
    """A database of its own with 30,000 applications over 50 users, analysed."""
    url = await postgres.create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    await generate(url, Plan(count=30_000, users=50, prefix="explain"))
    yield url
    await postgres.drop_database(url)


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


@pytest.mark.parametrize(
    ("sql", "arguments"),
    [
        (applications_service.PAGE_OF_ALL_SQL, [2**31 - 1, 11, 0]),
        (applications_service.PAGE_OF_ALL_SQL, [15_000, 11, 0]),
        (applications_service._PAGE_BY_USER_NAME_SQL, [2**31 - 1, 11, 0, "explain-07"]),
        (applications_service._PAGE_BY_USER_NAME_SQL, [20_000, 11, 0, "explain-07"]),
        (applications_service._PAGE_BY_USER_ID_SQL, [2**31 - 1, 11, 0, 3]),
        (users_service._PAGE_SQL, [2**31 - 1, 11, 0]),
    ],
    ids=["all", "all-deep-cursor", "user", "user-deep-cursor", "user-id", "users"],
)
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_listing_queries_never_scan_applications(
    populated: str, sql: str, arguments: list[Any], plan_cache_mode: str
) -> None:
    connection = await asyncpg.connect(populated)
    try:
        # A prepared statement runs with a plan for its values, or with a generic one.
        await connection.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        statement = await connection.prepare(f"EXPLAIN (FORMAT JSON) {sql}")
        [plan] = json.loads(await statement.fetchval(*arguments))
    finally:
        await connection.close()

    scans = [
        node
        for node in plan_nodes(plan["Plan"])
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "applications"
    ]
    assert scans == [], json.dumps(plan, indent=1)


async def test_listed_items_are_rendered_exactly_like_a_single_application(
    client: httpx.AsyncClient, user_name: str
) -> None:
    """The listing's JSON comes from PostgreSQL; it must match the API's own rendering."""
    first = await create(client, user_name, 'Заявка — «раз» "two" \\ three\ttab')
    user_id = (await client.get(f"/applications/{first}")).json()["user_id"]

    listed = (await client.get("/applications", params={"user_name": user_name})).json()
    of_user = (await client.get(f"/users/{user_id}/applications")).json()
    single = (await client.get(f"/applications/{first}")).json()

    assert listed["applications"] == [single] == of_user["applications"]
    assert single["created_at"].endswith("+00:00")
    assert ApplicationsPage.model_validate(listed).applications[0].id == first
    users = (await client.get("/users", params={"size": 100})).json()
    assert UsersPage.model_validate(users).users
    mine = next(user for user in users["users"] if user["id"] == user_id)
    assert mine == (await client.get(f"/users/{user_id}")).json()
