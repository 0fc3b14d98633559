"""Users: create, read, list."""

from __future__ import annotations

from typing import Any

import asyncpg
from databases import Database

from streamapp.db import raw_connection
from streamapp.errors import USER_NOT_FOUND, EntityAlreadyExists, EntityDoesNotExist
from streamapp.models.schemas import UserCreate
from streamapp.models.tables import users
from streamapp.services.paging import NEWEST, Slice, iso_timestamp, page_sql, slice_of

# One page of users by the primary key; the total is a counter kept by a trigger on insert.
_PAGE_SQL = page_sql(
    total="SELECT value AS total FROM totals WHERE name = 'users'",
    ids="SELECT id FROM users WHERE id < $1",
    row=f"""
        SELECT u.id, u.user_name, u.email, u.phone, {iso_timestamp("u.created_at")}
        FROM users AS u WHERE u.id = page.id
    """,  # noqa: S608
)

# Unique constraints (named by the MetaData naming convention) and the field each guards.
_UNIQUE_FIELDS = {"uq_users_user_name": "user_name", "uq_users_email": "email"}


async def create(*, db: Database, user_in: UserCreate) -> dict[str, Any]:
    """Store a new user, or raise EntityAlreadyExists naming the taken field."""
    query = users.insert().values(**user_in.model_dump()).returning(*users.c)
    try:
        row = await db.fetch_one(query)
    except asyncpg.UniqueViolationError as exc:
        raise EntityAlreadyExists(_UNIQUE_FIELDS.get(exc.constraint_name, "value")) from None
    assert row is not None
    return dict(row._mapping)


async def get(*, db: Database, user_id: int) -> dict[str, Any]:
    """Return one user, or raise EntityDoesNotExist."""
    row = await db.fetch_one(users.select().where(users.c.id == user_id))
    if row is None:
        raise EntityDoesNotExist(USER_NOT_FOUND)
    return dict(row._mapping)


async def get_all(*, db: Database, size: int, before: int = NEWEST, offset: int = 0) -> Slice:
    """Return users with ids below `before`, newest first, after skipping `offset`."""
    async with raw_connection(db) as connection:
        return slice_of(await connection.fetchrow(_PAGE_SQL, before, size, offset))
