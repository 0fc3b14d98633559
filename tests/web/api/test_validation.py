"""Every bad input gets a 422 (or 413) in the one error shape, naming the field and the reason."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from streamapp.metrics import REQUEST_SECONDS

LONG_NAME = "x" * 26
LONG_TEXT = "y" * 256


def field_errors(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}
    return {item["field"]: item["reason"] for item in body["error"]["fields"]}


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        ({"description": "d"}, "user_name", "Field required"),
        ({"user_name": "u"}, "description", "Field required"),
        ({"user_name": 5, "description": "d"}, "user_name", "valid string"),
        ({"user_name": "u", "description": ["d"]}, "description", "valid string"),
        ({"user_name": None, "description": "d"}, "user_name", "valid string"),
        ({"user_name": "", "description": "d"}, "user_name", "at least 1 character"),
        ({"user_name": "   ", "description": "d"}, "user_name", "must not be blank"),
        ({"user_name": "u", "description": " \n\t "}, "description", "must not be blank"),
        # Lengths count what was sent, as the schema says, blanks around it too.
        ({"user_name": " " * 20 + "abcdef", "description": "d"}, "user_name", "at most 25"),
        ({"user_name": "a\n", "description": "d"}, "user_name", "control characters"),
        ({"user_name": "u", "description": ""}, "description", "at least 1 character"),
        ({"user_name": LONG_NAME, "description": "d"}, "user_name", "at most 25 characters"),
        ({"user_name": "u", "description": LONG_TEXT}, "description", "at most 255 characters"),
        ({"user_name": "Ю" * 26, "description": "d"}, "user_name", "at most 25 characters"),
        ({"user_name": "a\x00b", "description": "d"}, "user_name", "control characters"),
        ({"user_name": "a\nb", "description": "d"}, "user_name", "control characters"),
        ({"user_name": "u", "description": "nul\x00"}, "description", "control characters"),
        ({"user_name": "u", "description": "d", "extra": 1}, "extra", "not permitted"),
    ],
)
async def test_invalid_application_is_422_naming_the_field(
    client: httpx.AsyncClient, body: object, field: str, reason_part: str
) -> None:
    response = await client.post("/applications", json=body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    errors = field_errors(response)
    assert field in errors
    assert reason_part in errors[field]


async def test_limits_are_inclusive(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/applications", json={"user_name": "Ж" * 25, "description": "д" * 255}
    )

    assert response.status_code == 201


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/applications",
        content=b'{"user_name": "u", ',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 422
    assert "malformed JSON" in field_errors(response)["body"]


@pytest.mark.parametrize("payload", [b"[]", b'"text"', b"null", b"12"])
async def test_body_that_is_not_an_object_is_422(client: httpx.AsyncClient, payload: bytes) -> None:
    response = await client.post(
        "/applications", content=payload, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422


async def test_missing_body_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/applications")

    assert response.status_code == 422
    assert "body" in field_errors(response)


async def test_oversized_body_is_413_and_stores_nothing(
    client: httpx.AsyncClient, pg: asyncpg.Pool, user_name: str
) -> None:
    body = {"user_name": user_name, "description": "z" * 100_000}

    response = await client.post("/applications", json=body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await pg.fetchval("SELECT count(*) FROM users WHERE user_name = $1", user_name) == 0


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 1024

    response = await client.post(
        "/applications", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"page": "x"}, "page"),
        ({"size": 0}, "size"),
        ({"size": 101}, "size"),
        ({"size": -5}, "size"),
        ({"user_name": "x" * 26}, "user_name"),
    ],
)
async def test_out_of_range_query_is_422(
    client: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    response = await client.get("/applications", params=params)

    assert response.status_code == 422
    assert field in field_errors(response)


@pytest.mark.parametrize("path", ["/users", "/users/1/applications"])
async def test_every_listing_answers_422_on_its_bad_query(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"page": "0", "size": "x", "cursor": "-1"})

    assert response.status_code == 422
    assert set(field_errors(response)) == {"page", "size", "cursor"}


async def test_size_100_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/applications", params={"size": 100})

    assert response.status_code == 200
    assert response.json()["size"] == 100


@pytest.mark.parametrize("path", ["/applications/0", "/applications/abc", "/applications/-3"])
async def test_bad_application_id_is_422(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 422
    assert "application_id" in field_errors(response)


async def test_unknown_route_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_is_405_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.delete("/applications")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_body_that_is_not_utf8_json_is_422_naming_the_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/applications", content=b"\x02\xff\xfe", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert field_errors(response) == {"body": "not valid JSON in UTF-8"}


async def test_a_client_gone_before_its_body_was_read_is_not_counted_as_its_mistake(
    api: Any,
) -> None:
    """As when a flood's client leaves while its request waits for a turn: 499 (nginx's
    client closed request) in the request metrics, not a 422."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/applications",
        "raw_path": b"/applications",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
        "client": ("127.0.0.1", 5000),
        "server": ("streamapp", 80),
    }
    sent: list[dict[str, Any]] = []

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def counted(status: str) -> float:
        return REQUEST_SECONDS.labels("POST", "/applications", status)._sum.get()

    closed_before, invalid_before = counted("499"), counted("422")
    await api(scope, gone, send)

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
    assert counted("499") > closed_before
    assert counted("422") == invalid_before


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/applications", "GET, POST"), ("/users", "GET, POST"), ("/applications/1", "GET")],
)
async def test_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    response = await client.request("DELETE", path)

    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"
