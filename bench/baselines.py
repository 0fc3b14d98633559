"""The baselines the benchmarks compare against: minimal FastAPI + asyncpg endpoints.

    insert  POST /applications: one INSERT into a table of its own
    keyset  GET /applications?size=&before=&user_name=: one keyset query joined with users,
            no count (what a listing costs at the least)

Each serves GET /healthz too; run them under uvicorn the way the API runs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

pool: asyncpg.Pool | None = None

KEYSET_SQL = """
SELECT a.id, a.user_id, u.user_name, a.description, a.status, a.created_at, a.processed_at
FROM applications AS a JOIN users AS u ON u.id = a.user_id
WHERE a.id < $1 AND ($2::text IS NULL OR u.user_name = $2)
ORDER BY a.id DESC LIMIT $3
"""


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=10)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS baseline (id serial PRIMARY KEY, user_name text, body text)"
    )
    yield
    await pool.close()


class Body(BaseModel):
    user_name: str
    description: str


insert = FastAPI(lifespan=lifespan)
keyset = FastAPI(lifespan=lifespan)


@insert.get("/healthz")
@keyset.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@insert.post("/applications", status_code=201)
async def create(body: Body) -> dict[str, int]:
    assert pool is not None
    new_id = await pool.fetchval(
        "INSERT INTO baseline (user_name, body) VALUES ($1, $2) RETURNING id",
        body.user_name,
        body.description,
    )
    return {"id": new_id}


@keyset.get("/applications")
async def list_applications(
    size: int = 10, before: int = 2**31 - 1, user_name: str | None = None
) -> dict[str, Any]:
    assert pool is not None
    rows = await pool.fetch(KEYSET_SQL, before, user_name, size)
    return {"applications": [dict(row) for row in rows]}
