"""Idempotency-Key on POST /applications: retries return the first result and store nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest


async def post(
    client: httpx.AsyncClient, key: str, user_name: str, description: str
) -> httpx.Response:
    return await client.post(
        "/applications",
        json={"user_name": user_name, "description": description},
        headers={"Idempotency-Key": key},
    )


async def test_duplicate_idempotency_key_returns_first_result(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    key = str(uuid.uuid4())
    first = await post(client, key, user_name, "once")
    retry = await post(client, key, user_name, "once")

    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert (
        await pg.fetchval(
            "SELECT count(*) FROM applications a JOIN users u ON u.id = a.user_id "
            "WHERE u.user_name = $1",
            user_name,
        )
        == 1
    )
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE key = $1", user_name) == 1


async def test_same_key_with_another_body_is_409(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    key = str(uuid.uuid4())
    await post(client, key, user_name, "first")

    response = await post(client, key, user_name, "second")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert response.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    descriptions = await pg.fetch(
        "SELECT description FROM applications a JOIN users u ON u.id = a.user_id "
        "WHERE u.user_name = $1",
        user_name,
    )
    assert [row["description"] for row in descriptions] == ["first"]


async def test_concurrent_retries_store_one_application(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    key = str(uuid.uuid4())

    responses = await asyncio.gather(*(post(client, key, user_name, "race") for _ in range(10)))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await pg.fetchval("SELECT count(*) FROM outbox WHERE key = $1", user_name) == 1


async def test_concurrent_first_posts_of_a_new_user_create_one_user(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/applications", json={"user_name": user_name, "description": str(i)})
            for i in range(10)
        )
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["application"]["user_id"] for r in responses}) == 1
    assert await pg.fetchval("SELECT count(*) FROM users WHERE user_name = $1", user_name) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ключ"])
async def test_invalid_idempotency_key_is_422(
    client: httpx.AsyncClient, user_name: str, key: str
) -> None:
    response = await client.post(
        "/applications",
        json={"user_name": user_name, "description": "d"},
        headers={"Idempotency-Key": key.encode()},
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in {f["field"] for f in response.json()["error"]["fields"]}


async def test_the_schema_documents_the_header_as_enforced(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/applications"]["post"]
    [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]

    assert header["in"] == "header"
    assert header["required"] is False
    assert header["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": r"^[\x21-\x7e]+$",
    }
