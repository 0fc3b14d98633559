from __future__ import annotations

import httpx


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_reports_database_and_kafka(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.json()["kafka"] in ("connected", "connecting")


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {"/applications", "/applications/{application_id}", "/users", "/readyz"} <= set(paths)


async def test_metrics_count_created_applications_and_requests(
    client: httpx.AsyncClient, user_name: str
) -> None:
    def created(text: str) -> float:
        line = next(
            x for x in text.splitlines() if x.startswith("streamapp_applications_created_total")
        )
        return float(line.split()[-1])

    before = created((await client.get("/metrics")).text)
    await client.post("/applications", json={"user_name": user_name, "description": "m"})
    response = await client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    assert created(response.text) == before + 1
    assert 'route="/applications",status="201"' in response.text
