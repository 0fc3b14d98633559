"""/users: register, read, list, and a user's applications."""

from __future__ import annotations

import httpx
import pytest


async def test_create_user_returns_it_with_location(
    client: httpx.AsyncClient, user_name: str
) -> None:
    response = await client.post(
        "/users",
        json={
            "user_name": user_name,
            "email": f"{user_name}@Example.com",
            "phone": "+7 900 123-45-67",
        },
    )

    assert response.status_code == 201
    user = response.json()
    assert response.headers["location"] == f"/users/{user['id']}"
    assert user["user_name"] == user_name
    assert user["email"].endswith("@example.com")
    assert user["phone"] == "+7 900 123-45-67"
    assert (await client.get(f"/users/{user['id']}")).json() == user


async def test_duplicate_user_name_is_409_naming_it(
    client: httpx.AsyncClient, user_name: str
) -> None:
    await client.post("/users", json={"user_name": user_name})

    response = await client.post("/users", json={"user_name": user_name})

    assert response.status_code == 409
    assert response.json()["error"]["fields"] == [{"field": "user_name", "reason": "already taken"}]


async def test_duplicate_email_is_409_naming_it(client: httpx.AsyncClient, user_name: str) -> None:
    email = f"{user_name}@example.com"
    await client.post("/users", json={"user_name": user_name, "email": email})

    response = await client.post("/users", json={"user_name": f"{user_name}2", "email": email})

    assert response.status_code == 409
    assert response.json()["error"]["fields"][0]["field"] == "email"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_name": "ok", "email": "not-an-email"}, "email"),
        ({"user_name": "ok", "phone": "call me"}, "phone"),
        ({"user_name": "ok", "phone": "1" * 40}, "phone"),
        ({"email": "a@example.com"}, "user_name"),
    ],
)
async def test_invalid_user_is_422(client: httpx.AsyncClient, body: object, field: str) -> None:
    response = await client.post("/users", json=body)

    assert response.status_code == 422
    assert field in {f["field"] for f in response.json()["error"]["fields"]}


async def test_missing_user_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/2147483000")).status_code == 404
    assert (await client.get("/users/2147483000/applications")).status_code == 404


async def test_user_created_by_an_application_is_listed(
    client: httpx.AsyncClient, user_name: str
) -> None:
    created = await client.post("/applications", json={"user_name": user_name, "description": "d"})
    user_id = created.json()["application"]["user_id"]

    user = (await client.get(f"/users/{user_id}")).json()
    users = (await client.get("/users", params={"size": 100})).json()

    assert user["user_name"] == user_name
    assert user["email"] is None
    assert user_id in [u["id"] for u in users["users"]]
    assert users["total"] >= 1


async def test_user_applications_lists_only_theirs(
    client: httpx.AsyncClient, user_name: str
) -> None:
    for text in ("a", "b"):
        await client.post("/applications", json={"user_name": user_name, "description": text})
    await client.post("/applications", json={"user_name": f"{user_name}x", "description": "c"})
    user_id = (await client.get("/applications", params={"user_name": user_name})).json()[
        "applications"
    ][0]["user_id"]

    body = (await client.get(f"/users/{user_id}/applications", params={"size": 1})).json()

    assert body["total"] == 2
    assert len(body["applications"]) == 1
    assert body["applications"][0]["description"] == "b"


async def test_special_use_email_domains_are_accepted(
    client: httpx.AsyncClient, user_name: str
) -> None:
    response = await client.post(
        "/users", json={"user_name": user_name, "email": f"{user_name}@mail.example.test"}
    )

    assert response.status_code == 201
    assert response.json()["email"] == f"{user_name}@mail.example.test"
