"""Applications: create (with user upsert and outbox row), read, list, mark processed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database

from streamapp.db import raw_connection
from streamapp.errors import APPLICATION_NOT_FOUND, EntityDoesNotExist, IdempotencyKeyReused
from streamapp.models.records import EVENT_FIELDS
from streamapp.models.schemas import ApplicationCreate
from streamapp.models.tables import STATUS_NEW, STATUS_PROCESSED, applications, users
from streamapp.services.outbox import OutboxEvent

# The event's JSON, one key per field of the Kafka record (the columns of `inserted` below).
_EVENT_JSON = "jsonb_build_object({})".format(", ".join(f"'{f}', {f}" for f in EVENT_FIELDS))

# One statement, so one round trip and one implicit transaction: find or create the user,
# insert the application, queue its event in the outbox (keyed by user name, its payload built
# from the record's fields). It returns no row when the Idempotency-Key is already taken or a
# concurrent request created the same new user.
_CREATE_SQL = f"""
WITH existing_user AS (
    SELECT id FROM users WHERE user_name = $1
), new_user AS (
    INSERT INTO users (user_name)
    SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM existing_user)
    ON CONFLICT (user_name) DO NOTHING
    RETURNING id
), the_user AS (
    SELECT id FROM existing_user UNION ALL SELECT id FROM new_user
), inserted AS (
    INSERT INTO applications (user_id, description, idempotency_key, request_hash)
    SELECT id, $2, $3, $4 FROM the_user
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, user_id, $1::text AS user_name, description, status, created_at, processed_at
), queued AS (
    INSERT INTO outbox (topic, key, application_id, payload)
    SELECT $5, user_name, id, {_EVENT_JSON}
    FROM inserted
    RETURNING id, topic, key, payload::text AS payload
)
SELECT inserted.*, queued.id AS outbox_id, queued.topic, queued.key, queued.payload
FROM inserted, queued
"""

_BY_IDEMPOTENCY_KEY_SQL = """
SELECT a.id, a.user_id, u.user_name, a.description, a.status, a.created_at,
       a.processed_at, a.request_hash
FROM applications AS a JOIN users AS u ON u.id = a.user_id
WHERE a.idempotency_key = $1
"""

_MARK_PROCESSED_SQL = """
UPDATE applications SET status = $2, processed_at = now()
WHERE id = ANY($1::integer[]) AND status = $3
RETURNING id
"""

_PROCESSED_PER_USER_SQL = """
SELECT u.user_name, count(a.id) AS processed
FROM users AS u
LEFT JOIN applications AS a ON a.user_id = u.id AND a.status = $2
WHERE u.user_name = ANY($1::text[])
GROUP BY u.user_name
"""

# Attempts at the create statement: a second one is needed only when a concurrent request
# created the same new user between our look-up and our insert.
_CREATE_ATTEMPTS = 3

_COLUMNS = (
    applications.c.id,
    applications.c.user_id,
    users.c.user_name,
    applications.c.description,
    applications.c.status,
    applications.c.created_at,
    applications.c.processed_at,
)
_APPLICATION_COLUMNS = tuple(column.name for column in _COLUMNS)


@dataclass(frozen=True, slots=True)
class Created:
    """A new application, and its committed event to publish."""

    application: dict[str, Any]
    event: OutboxEvent


@dataclass(frozen=True, slots=True)
class Replayed:
    """The application first stored under a reused Idempotency-Key; nothing new was stored."""

    application: dict[str, Any]


def request_hash(application_in: ApplicationCreate) -> str:
    """Return a stable fingerprint of the (normalised) request body."""
    body = json.dumps(application_in.model_dump(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


async def create(
    *,
    db: Database,
    application_in: ApplicationCreate,
    topic: str,
    idempotency_key: str | None = None,
) -> Created | Replayed:
    """Store an application and its outbox event; replay the first result for a reused key."""
    fingerprint = request_hash(application_in) if idempotency_key else None
    async with raw_connection(db) as connection:
        for _ in range(_CREATE_ATTEMPTS):
            row = await connection.fetchrow(
                _CREATE_SQL,
                application_in.user_name,
                application_in.description,
                idempotency_key,
                fingerprint,
                topic,
            )
            if row is not None:
                application = {column: row[column] for column in _APPLICATION_COLUMNS}
                event = OutboxEvent(
                    row["outbox_id"], row["topic"], row["key"], row["payload"].encode()
                )
                return Created(application, event)
            if idempotency_key is not None:
                first = await connection.fetchrow(_BY_IDEMPOTENCY_KEY_SQL, idempotency_key)
                if first is not None:
                    return _replay(dict(first), fingerprint)
    raise RuntimeError("could not store the application after repeated user-creation races")


def _replay(first: dict[str, Any], fingerprint: str | None) -> Replayed:
    if first.pop("request_hash") != fingerprint:
        raise IdempotencyKeyReused()
    return Replayed(first)


async def get(*, db: Database, application_id: int) -> dict[str, Any]:
    """Return one application with its user's name, or raise EntityDoesNotExist."""
    query = (
        sa.select(*_COLUMNS)
        .select_from(applications.join(users))
        .where(applications.c.id == application_id)
    )
    row = await db.fetch_one(query)
    if row is None:
        raise EntityDoesNotExist(APPLICATION_NOT_FOUND)
    return dict(row._mapping)


async def get_all(
    *,
    db: Database,
    page: int,
    size: int,
    user_name: str | None = None,
    user_id: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Return one page of applications, newest (highest id) first, and the total count."""
    source = applications.join(users)
    conditions = []
    if user_name is not None:
        conditions.append(users.c.user_name == user_name)
    if user_id is not None:
        conditions.append(applications.c.user_id == user_id)
    page_query = (
        sa.select(*_COLUMNS)
        .select_from(source)
        .where(*conditions)
        .order_by(applications.c.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    count_query = sa.select(sa.func.count()).select_from(source).where(*conditions)
    rows = await db.fetch_all(page_query)
    total = await db.fetch_val(count_query)
    return [dict(row._mapping) for row in rows], int(total)


async def mark_processed(*, db: Database, application_ids: Sequence[int]) -> set[int]:
    """Move the given applications from new to processed; return the ids actually moved."""
    async with raw_connection(db) as connection:
        rows = await connection.fetch(
            _MARK_PROCESSED_SQL, list(application_ids), STATUS_PROCESSED, STATUS_NEW
        )
    return {row["id"] for row in rows}


async def count_processed(*, db: Database, user_names: Sequence[str]) -> Mapping[str, int]:
    """Return how many processed applications each named user has (from PostgreSQL)."""
    async with raw_connection(db) as connection:
        rows = await connection.fetch(_PROCESSED_PER_USER_SQL, list(user_names), STATUS_PROCESSED)
    return {row["user_name"]: int(row["processed"]) for row in rows}
