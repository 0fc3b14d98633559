"""The baselines the benchmarks compare against: minimal FastAPI + asyncpg endpoints.

    insert  POST /applications: one INSERT into a table of its own
    keyset  GET /applications?size=&before=&user_name=: one keyset query joined with users,
            no count (what a listing costs at the least); with ?page=, the same query with
            an OFFSET instead (what the original service did, less its count);
            GET /ids?size=&offset=: the plainest offset query, ids only from one table

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

COLUMNS = "a.id, a.user_id, u.user_name, a.description, a.status, a.created_at, a.processed_at"
KEYSET_SQL = f"""
SELECT {COLUMNS} FROM applications AS a JOIN users AS u ON u.id = a.user_id
WHERE a.id < $1 ORDER BY a.id DESC LIMIT $2
"""
KEYSET_OF_USER_SQL = f"""
SELECT {COLUMNS} FROM applications AS a JOIN users AS u ON u.id = a.user_id
WHERE a.id < $1 AND u.user_name = $3 ORDER BY a.id DESC LIMIT $2
"""
IDS_SQL = "SELECT id FROM applications ORDER BY id DESC OFFSET $1 LIMIT $2"
# The plain offset query for a page of rows on the one table (no user names, no total).
ROWS_SQL = """
SELECT id, user_id, description, status, created_at, processed_at
FROM applications ORDER BY id DESC OFFSET $1 LIMIT $2
"""
OFFSET_SQL = f"""
SELECT {COLUMNS} FROM applications AS a JOIN users AS u ON u.id = a.user_id
ORDER BY a.id DESC LIMIT $1 OFFSET $2
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
    size: int = 10, before: int = 2**31 - 1, user_name: str | None = None, page: int | None = None
) -> dict[str, Any]:
    assert pool is not None
    if page is not None:
        rows = await pool.fetch(OFFSET_SQL, size, (page - 1) * size)
    elif user_name is None:
        rows = await pool.fetch(KEYSET_SQL, before, size)
    else:
        rows = await pool.fetch(KEYSET_OF_USER_SQL, before, size, user_name)
    return {"applications": [dict(row) for row in rows]}


@keyset.get("/ids")
async def list_ids(size: int = 10, offset: int = 0) -> dict[str, list[int]]:
    assert pool is not None
    rows = await pool.fetch(IDS_SQL, offset, size)
    return {"ids": [row["id"] for row in rows]}
