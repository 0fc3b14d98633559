"""PostgreSQL stops under a running `streamapp api`: 503 with a clear message, then recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from tools.stack.processes import Api, child_env, eventually


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own, since the test stops it."""
    server = EmbeddedPostgres()
    server.start()
    yield server
    server.close()


def post(api: Api, description: str) -> httpx.Response:
    return httpx.post(
        f"{api.url}/applications",
        json={"user_name": "outage", "description": description},
        timeout=30,
    )


async def test_database_outage_gives_503_then_recovers(
    own_postgres: EmbeddedPostgres, service_env: dict[str, str]
) -> None:
    url = own_postgres.create_database("streamapp_test_outage")
    await asyncio.to_thread(migrate.upgrade, url)
    api = Api(child_env(**{**service_env, "DATABASE_URL": url})).start()
    try:
        await asyncio.to_thread(api.wait_ready)
        assert post(api, "before").status_code == 201

        own_postgres.stop()
        down = post(api, "during")
        listing = httpx.get(f"{api.url}/applications", timeout=30)
        ready = httpx.get(f"{api.url}/readyz", timeout=30)

        assert down.status_code == 503
        assert down.json()["error"]["code"] == "service_unavailable"
        assert "database is unavailable" in down.json()["error"]["message"]
        assert "asyncpg" not in down.text
        assert "Traceback" not in down.text
        assert listing.status_code == 503
        assert ready.status_code == 503
        assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200

        own_postgres.start()
        await eventually(lambda: post(api, "after").status_code == 201, timeout=30, interval=0.5)
        stored = httpx.get(f"{api.url}/applications", params={"user_name": "outage"}).json()
        descriptions = [a["description"] for a in stored["applications"]]
        assert descriptions[0] == "after"
        assert "before" in descriptions
        assert "during" not in descriptions
        assert httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200
    finally:
        api.stop()


async def test_api_started_before_the_database_waits_for_it(
    own_postgres: EmbeddedPostgres, service_env: dict[str, str]
) -> None:
    url = own_postgres.create_database("streamapp_test_late")
    await asyncio.to_thread(migrate.upgrade, url)
    own_postgres.stop()
    api = Api(child_env(**{**service_env, "DATABASE_URL": url})).start()
    try:
        # Two attempts logged: it retries rather than giving up at the first refusal.
        await eventually(lambda: api.log().count("PostgreSQL not reachable yet") >= 2, timeout=30)
        assert api.process is not None
        assert api.process.poll() is None  # still waiting, not crashed

        own_postgres.start()
        await asyncio.to_thread(api.wait_ready)
        assert post(api, "late").status_code == 201
    finally:
        api.stop()
