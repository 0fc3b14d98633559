"""Load shedding in the API's own middleware: at most `limit` requests at once, a bounded
wait for a turn, 503 with Retry-After for the rest; probes and metrics never wait."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from streamapp.metrics import REQUESTS_SHED
from streamapp.web.api.shedding import ConcurrencyLimit, Turns

LIMIT = 2
QUEUE_TIMEOUT = 0.3


class Held:
    """A route whose requests stay in progress until the test lets them go."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.served: list[str] = []

    async def serve(self, request: Request) -> Response:
        self.served.append(request.query_params.get("n", ""))
        await self.release.wait()
        return PlainTextResponse("done")


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


@pytest.fixture
async def held() -> AsyncIterator[tuple[Held, httpx.AsyncClient]]:
    route = Held()
    app = ConcurrencyLimit(
        Starlette(routes=[Route("/held", route.serve), Route("/healthz", healthz)]),
        limit=LIMIT,
        queue_timeout=QUEUE_TIMEOUT,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://limit") as client:
        yield route, client
    route.release.set()


async def _fill(route: Held, client: httpx.AsyncClient) -> list[asyncio.Task[httpx.Response]]:
    """LIMIT requests in progress, held."""
    tasks = [asyncio.create_task(client.get("/held", params={"n": n})) for n in range(LIMIT)]
    while len(route.served) < LIMIT:
        await asyncio.sleep(0.01)
    return tasks


def _shed() -> float:
    return REQUESTS_SHED.labels("queue")._value.get()


async def test_a_request_beyond_the_limit_waits_at_most_the_queue_timeout_then_gets_503(
    held: tuple[Held, httpx.AsyncClient],
) -> None:
    route, client = held
    in_progress = await _fill(route, client)
    shed_before = _shed()

    started = time.monotonic()
    refused = await client.get("/held", params={"n": "late"})
    waited = time.monotonic() - started

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert "busy" in refused.json()["error"]["message"]
    assert QUEUE_TIMEOUT <= waited < QUEUE_TIMEOUT + 0.5
    assert "late" not in route.served  # refused before the app saw it: retrying is safe
    assert _shed() == shed_before + 1

    route.release.set()
    assert [(await task).status_code for task in in_progress] == [200] * LIMIT


async def test_a_waiting_request_is_served_when_a_turn_frees_in_time(
    held: tuple[Held, httpx.AsyncClient],
) -> None:
    route, client = held
    in_progress = await _fill(route, client)
    waiting = asyncio.create_task(client.get("/held", params={"n": "next"}))
    await asyncio.sleep(QUEUE_TIMEOUT / 3)
    assert "next" not in route.served  # it waits for a turn

    route.release.set()
    assert (await waiting).status_code == 200
    assert route.served[-1] == "next"
    await asyncio.gather(*in_progress)


async def test_probes_answer_while_every_turn_is_taken(
    held: tuple[Held, httpx.AsyncClient],
) -> None:
    route, client = held
    in_progress = await _fill(route, client)

    started = time.monotonic()
    probe = await client.get("/healthz")

    assert probe.status_code == 200
    assert time.monotonic() - started < QUEUE_TIMEOUT
    route.release.set()
    await asyncio.gather(*in_progress)


async def test_turns_go_back_after_errors_and_refusals(
    held: tuple[Held, httpx.AsyncClient],
) -> None:
    route, client = held
    for _ in range(3):  # each round takes every turn and sheds one request
        route.release.clear()
        in_progress = await _fill(route, client)
        assert (await client.get("/held")).status_code == 503
        route.release.set()
        await asyncio.gather(*in_progress)
        route.served.clear()
    assert (await client.get("/held")).status_code == 200


async def test_expired_waits_leave_the_queue_and_no_turn_is_lost() -> None:
    turns = Turns(1)
    assert turns.take()
    # A flood's waits, all expired while the one turn stayed taken.
    assert not any(await asyncio.gather(*(turns.wait(0.05) for _ in range(1000))))
    assert len(turns._waiting) == 0  # none kept for the rest of the flood
    turns.give_back()
    assert turns.take()
    assert not turns.take()


async def test_a_turn_handed_to_a_cancelled_wait_goes_to_the_next() -> None:
    turns = Turns(1)
    assert turns.take()
    first = asyncio.create_task(turns.wait(5))
    await asyncio.sleep(0)
    second = asyncio.create_task(turns.wait(5))
    await asyncio.sleep(0)
    turns.give_back()  # to the newest: second
    second.cancel()  # cancelled before it could use the turn
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await asyncio.wait_for(first, 1) is True


def test_the_api_lifts_its_open_file_limit_to_the_hard_one() -> None:
    script = (
        "import resource\n"
        "from streamapp.web.api.server import raise_open_file_limit\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "raised = raise_open_file_limit()\n"
        "print(raised, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    raised, soft, hard = (int(value) for value in output.split())
    assert raised == soft > 256
    assert soft == hard or hard == resource.RLIM_INFINITY
