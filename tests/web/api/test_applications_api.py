"""POST/GET /applications against the real database."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import httpx
import pytest


async def create(
    client: httpx.AsyncClient, user_name: str, description: str = "fix it", **headers: str
) -> httpx.Response:
    return await client.post(
        "/applications", json={"user_name": user_name, "description": description}, headers=headers
    )


async def test_create_application_stores_it_with_a_user(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    response = await create(client, user_name, "Need a new laptop")

    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Application created successfully"
    application = body["application"]
    assert body["id"] == application["id"]
    assert response.headers["location"] == f"/applications/{application['id']}"
    assert application["user_name"] == user_name
    assert application["description"] == "Need a new laptop"
    assert application["status"] in ("new", "processed")
    assert datetime.fromisoformat(application["created_at"]).utcoffset() is not None
    row = await pg.fetchrow(
        "SELECT a.description, u.user_name, u.id AS uid, a.user_id FROM applications a "
        "JOIN users u ON u.id = a.user_id WHERE a.id = $1",
        application["id"],
    )
    assert row["user_name"] == user_name
    assert row["uid"] == application["user_id"]
    outbox = await pg.fetchrow(
        "SELECT topic, key, payload::text FROM outbox WHERE (payload->>'id')::int = $1",
        application["id"],
    )
    assert outbox["topic"] == "new_applications"
    assert outbox["key"] == user_name


async def test_same_user_name_reuses_the_user(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    first = (await create(client, user_name, "one")).json()["application"]
    second = (await create(client, user_name, "two")).json()["application"]

    assert first["user_id"] == second["user_id"]
    assert await pg.fetchval("SELECT count(*) FROM users WHERE user_name = $1", user_name) == 1


async def test_non_ascii_text_is_stored_as_given(client: httpx.AsyncClient) -> None:
    name = "Юрий Ёлкин ✓"
    response = await create(client, name, "Заявка на отпуск — 5 дней 🌴")

    assert response.status_code == 201
    listed = await client.get("/applications", params={"user_name": name})
    assert listed.json()["applications"][0]["description"] == "Заявка на отпуск — 5 дней 🌴"


async def test_user_name_and_description_are_trimmed(
    client: httpx.AsyncClient, user_name: str
) -> None:
    response = await create(client, f"  {user_name}  ", "  text  ")

    assert response.json()["application"]["user_name"] == user_name
    assert response.json()["application"]["description"] == "text"


async def test_get_application_by_id(client: httpx.AsyncClient, user_name: str) -> None:
    created = (await create(client, user_name)).json()

    response = await client.get(f"/applications/{created['id']}")

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.json()["user_name"] == user_name


async def test_get_missing_application_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/applications/2147483000")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_list_applications_filters_by_user_name(
    client: httpx.AsyncClient, user_name: str
) -> None:
    for index in range(3):
        await create(client, user_name, f"mine {index}")
    await create(client, f"{user_name}-other", "not mine")

    body = (await client.get("/applications", params={"user_name": user_name})).json()

    assert body["total"] == 3
    assert {a["user_name"] for a in body["applications"]} == {user_name}
    assert set(body["applications"][0]) >= {
        "id",
        "user_name",
        "description",
        "created_at",
        "status",
        "user_id",
    }


async def test_filter_is_an_exact_match(client: httpx.AsyncClient, user_name: str) -> None:
    await create(client, user_name)

    body = (await client.get("/applications", params={"user_name": user_name[:-1]})).json()

    assert body == {"applications": [], "page": 1, "size": 10, "total": 0, "next_cursor": None}


async def test_list_is_newest_first_and_paginated(
    client: httpx.AsyncClient, user_name: str
) -> None:
    ids = [(await create(client, user_name, f"n{i}")).json()["id"] for i in range(5)]

    page1 = (await client.get("/applications", params={"user_name": user_name, "size": 2})).json()
    page3 = (
        await client.get("/applications", params={"user_name": user_name, "size": 2, "page": 3})
    ).json()

    assert [a["id"] for a in page1["applications"]] == sorted(ids, reverse=True)[:2]
    assert [a["id"] for a in page3["applications"]] == [min(ids)]
    assert (page1["page"], page1["size"], page1["total"]) == (1, 2, 5)


async def test_page_past_the_end_is_empty(client: httpx.AsyncClient, user_name: str) -> None:
    await create(client, user_name)

    body = (await client.get("/applications", params={"user_name": user_name, "page": 50})).json()

    assert body["applications"] == []
    assert body["total"] == 1


async def test_list_without_filter_shows_newest_first(
    client: httpx.AsyncClient, user_name: str
) -> None:
    newest = (await create(client, user_name)).json()["id"]

    body = (await client.get("/applications", params={"size": 100})).json()

    ids = [a["id"] for a in body["applications"]]
    assert ids == sorted(ids, reverse=True)
    assert newest in ids
    assert body["total"] >= len(ids)


@pytest.mark.parametrize(
    ("user_suffix", "description"),
    [
        ("');DROP TABLE users;--", "x'; DELETE FROM applications WHERE '1'='1"),
        ('" OR 1=1 --', "$1 $$ ; COMMIT; \\x00 %s %(id)s {0} ${{user}}"),
    ],
)
async def test_sql_looking_input_is_stored_verbatim(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_suffix: str, description: str
) -> None:
    user_name = f"{uuid.uuid4().hex[:3]}{user_suffix}"
    created = await client.post(
        "/applications", json={"user_name": user_name, "description": description}
    )
    assert created.status_code == 201

    listed = await client.get("/applications", params={"user_name": user_name})
    stored = await pg.fetchrow(
        "SELECT u.user_name, a.description FROM applications a JOIN users u ON u.id = a.user_id "
        "WHERE a.id = $1",
        created.json()["id"],
    )

    assert dict(stored) == {"user_name": user_name, "description": description}
    assert [a["description"] for a in listed.json()["applications"]] == [description]
    assert await pg.fetchval("SELECT count(*) FROM users") > 0  # the table is still there


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    headers = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    preflight = await client.options("/applications", headers=headers)
    read = await client.get("/applications", headers={"Origin": "https://elsewhere.example"})

    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in read.headers
