"""Users: create, read, list."""

from __future__ import annotations

from typing import Any

import asyncpg
import sqlalchemy as sa
from databases import Database

from streamapp.errors import USER_NOT_FOUND, EntityAlreadyExists, EntityDoesNotExist
from streamapp.models.schemas import UserCreate
from streamapp.models.tables import users

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


async def get_all(*, db: Database, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """Return one page of users, newest (highest id) first, and the total count."""
    query = users.select().order_by(users.c.id.desc()).limit(size).offset((page - 1) * size)
    rows = await db.fetch_all(query)
    total = await db.fetch_val(sa.select(sa.func.count()).select_from(users))
    return [dict(row._mapping) for row in rows], int(total)
