"""The baseline for bench/http_write.sh: a minimal FastAPI app doing one INSERT per POST."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

pool: asyncpg.Pool | None = None


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


api = FastAPI(lifespan=lifespan)


@api.post("/applications", status_code=201)
async def create(body: Body) -> dict[str, int]:
    assert pool is not None
    new_id = await pool.fetchval(
        "INSERT INTO baseline (user_name, body) VALUES ($1, $2) RETURNING id",
        body.user_name,
        body.description,
    )
    return {"id": new_id}
