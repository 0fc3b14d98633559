"""The API's deadline: a request nothing answers in time gets a 503 at the deadline, not a
hang; a wait the client asked for extends it; an answer already streaming is left alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streamapp.web.api.middleware import RequestDeadline, extend_deadline

DEADLINE = 0.3
cancelled: list[str] = []


async def hang(request: Request) -> Response:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.append(request.url.path)  # the request's work stops with it
        raise
    return Response()


async def wait(request: Request) -> Response:
    seconds = float(request.query_params["s"])
    extend_deadline(seconds)
    await asyncio.sleep(seconds)
    return JSONResponse({"waited": seconds})


async def stream(_: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"tick\n"
            await asyncio.sleep(DEADLINE / 2)

    return StreamingResponse(chunks())


async def own_timeout(_: Request) -> Response:
    raise TimeoutError("a timeout of the app's own")


app = RequestDeadline(
    Starlette(
        routes=[
            Route("/hang", hang),
            Route("/wait", wait),
            Route("/stream", stream),
            Route("/own-timeout", own_timeout),
        ]
    ),
    seconds=DEADLINE,
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://deadline") as http:
        yield http


async def test_a_request_nothing_answers_gets_503_at_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    response = await client.get("/hang")
    took = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "0.3 s" in response.json()["error"]["message"]
    assert DEADLINE <= took < DEADLINE + 0.5
    assert cancelled == ["/hang"]


async def test_a_wait_the_client_asked_for_extends_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/wait", params={"s": 2 * DEADLINE})
    assert response.status_code == 200
    assert response.json() == {"waited": 2 * DEADLINE}


async def test_an_answer_already_streaming_outlives_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/stream")
    assert response.status_code == 200
    assert response.text == "tick\n" * 4


async def test_a_timeout_of_the_app_itself_is_not_taken_for_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/own-timeout")
    assert response.status_code == 500
