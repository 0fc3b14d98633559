"""Applications as the API sees them: create (with user upsert and outbox row), read, list."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from databases import Database

from streamapp.db import raw_connection
from streamapp.errors import (
    APPLICATION_NOT_FOUND,
    USER_NOT_FOUND,
    EntityDoesNotExist,
    IdempotencyKeyReused,
)
from streamapp.models.records import EVENT_FIELDS
from streamapp.models.schemas import ApplicationCreate
from streamapp.models.tables import PROCESSED_TOTAL, STATUS_NEW, applications, users
from streamapp.services.outbox import OutboxEvent
from streamapp.services.paging import NEWEST, Slice, iso_timestamp, page_sql, slice_of

# The event's JSON, one key per field of the Kafka record (the columns of `inserted` below).
EVENT_JSON = "jsonb_build_object({})".format(", ".join(f"'{f}', {f}" for f in EVENT_FIELDS))

# One statement, so one round trip and one implicit transaction, for an array of applications
# (one, or a group commit's many): find or create each user, insert the applications, queue
# their events in the outbox (keyed by user name, the payload built from the record's fields).
# Ids are drawn in arrival order before anything is inserted, so each result row is matched to
# its request by position. New users and keyed applications are inserted in key order, so two
# concurrent batches always take their unique-index locks in the same order (no deadlock).
# A row is missing from the result when its Idempotency-Key is taken (or repeated in the
# batch), or when a concurrent statement created its new user meanwhile. Each name is looked
# up on its own (OFFSET 0 keeps the lookup from being merged into a join): the API runs generic
# plans (streamapp.db.GENERIC_PLANS), which guess ten names per statement and would read a
# small users table in full, dead row versions and all, rather than probe its index.
_CREATE_SQL = f"""
WITH input AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('applications', 'id'))::integer AS id, i.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $7::text[])
         WITH ORDINALITY AS i (user_name, description, idempotency_key, request_hash,
                               request_id, traceparent, position)
), named AS (
    SELECT DISTINCT user_name FROM input
), existing_user AS (
    SELECT found.* FROM named CROSS JOIN LATERAL (
        SELECT id, user_name FROM users WHERE users.user_name = named.user_name OFFSET 0
    ) AS found
), new_user AS (
    INSERT INTO users (user_name)
    SELECT user_name FROM named
    WHERE user_name NOT IN (SELECT user_name FROM existing_user)
    ORDER BY user_name
    ON CONFLICT (user_name) DO NOTHING
    RETURNING id, user_name
), the_user AS (
    SELECT id, user_name FROM existing_user UNION ALL SELECT id, user_name FROM new_user
), inserted AS (
    INSERT INTO applications (id, user_id, description, idempotency_key, request_hash)
    SELECT input.id, the_user.id, input.description, input.idempotency_key, input.request_hash
    FROM input JOIN the_user USING (user_name)
    ORDER BY input.idempotency_key NULLS FIRST, input.id
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, user_id, description, status, created_at, processed_at
), filed AS (
    SELECT inserted.*, input.user_name, input.request_id, input.traceparent, input.position
    FROM inserted JOIN input USING (id)
), queued AS (
    INSERT INTO outbox (topic, key, application_id, payload, request_id, traceparent)
    SELECT $6, user_name, id, {EVENT_JSON}, request_id, traceparent FROM filed ORDER BY id
    RETURNING id, application_id, topic, key, payload::text AS payload, request_id,
              traceparent, extract(epoch FROM created_at)::float8 AS created
)
SELECT filed.position, filed.id, filed.user_id, filed.user_name, filed.description,
       filed.status, filed.created_at, filed.processed_at, queued.id AS outbox_id,
       queued.topic, queued.key, queued.payload, queued.request_id, queued.traceparent,
       queued.created
FROM filed JOIN queued ON queued.application_id = filed.id
"""  # noqa: S608

_BY_IDEMPOTENCY_KEY_SQL = """
SELECT a.id, a.user_id, u.user_name, a.description, a.status, a.created_at,
       a.processed_at, a.request_hash
FROM applications AS a JOIN users AS u ON u.id = a.user_id
WHERE a.idempotency_key = $1
"""

# The listings: ids by index (a keyset below `before`, or an offset), then their rows. The
# total is one user's processed count plus their applications still new, or the processed
# total plus every application still new: counters and a small partial index, never a scan.
_ROW = f"""
SELECT a.id, a.user_id, u.user_name, a.description, a.status,
       {iso_timestamp("a.created_at")}, {iso_timestamp("a.processed_at")}
FROM applications AS a JOIN users AS u ON u.id = a.user_id WHERE a.id = page.id
"""  # noqa: S608
_TOTAL_OF_ONE = f"""
SELECT users.id AS user_id, users.processed_count + (
    SELECT count(*) FROM applications WHERE user_id = users.id AND status = '{STATUS_NEW}'
) AS total
FROM users WHERE {{match}}
"""  # noqa: S608
_OF_ONE = "SELECT id FROM applications WHERE id < $1 AND user_id = (SELECT user_id FROM total)"
PAGE_OF_ALL_SQL = page_sql(
    total=f"""
        SELECT (SELECT value FROM totals WHERE name = '{PROCESSED_TOTAL}')
             + (SELECT count(*) FROM applications WHERE status = '{STATUS_NEW}') AS total
    """,  # noqa: S608
    ids="SELECT id FROM applications WHERE id < $1",
    row=_ROW,
)
_PAGE_BY_USER_ID_SQL = page_sql(
    total=_TOTAL_OF_ONE.format(match="users.id = $4"), ids=_OF_ONE, row=_ROW
)
_PAGE_BY_USER_NAME_SQL = page_sql(
    total=_TOTAL_OF_ONE.format(match="users.user_name = $4"), ids=_OF_ONE, row=_ROW
)

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
    request_id: str | None = None,
    traceparent: str | None = None,
    fingerprint: str | None = None,
) -> Created | Replayed:
    """Store an application and its outbox event; replay the first result for a reused key.

    `fingerprint` is the request's `request_hash`, when the caller has it already.
    """
    if idempotency_key and fingerprint is None:
        fingerprint = request_hash(application_in)
    async with raw_connection(db) as connection:
        for _ in range(_CREATE_ATTEMPTS):
            stored = await insert(
                connection,
                [(application_in, idempotency_key, fingerprint, request_id, traceparent)],
                topic=topic,
            )
            if stored:
                return stored[1]
            if idempotency_key is not None:
                first = await connection.fetchrow(_BY_IDEMPOTENCY_KEY_SQL, idempotency_key)
                if first is not None:
                    return _replay(dict(first), fingerprint)
    raise RuntimeError("could not store the application after repeated user-creation races")


# One application to store: the body, its Idempotency-Key, request_hash, request id and
# traceparent.
Filing = tuple[ApplicationCreate, str | None, str | None, str | None, str | None]


async def insert(connection: Any, filings: Sequence[Filing], *, topic: str) -> dict[int, Created]:
    """Store applications with their outbox events in one statement; return what was stored,
    by position (from 1). A position is missing when its Idempotency-Key is taken (or repeated
    among `filings`) or a concurrent statement created its new user meanwhile."""
    rows = await connection.fetch(
        _CREATE_SQL,
        [application_in.user_name for application_in, *_ in filings],
        [application_in.description for application_in, *_ in filings],
        [key for _, key, *_ in filings],
        [fingerprint for _, _, fingerprint, *_ in filings],
        [request_id for *_, request_id, _ in filings],
        topic,
        [traceparent for *_, traceparent in filings],
    )
    return {
        row["position"]: Created(
            {column: row[column] for column in _APPLICATION_COLUMNS},
            OutboxEvent.from_row(row, id_column="outbox_id"),
        )
        for row in rows
    }


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
    size: int,
    before: int = NEWEST,
    offset: int = 0,
    user_name: str | None = None,
    user_id: int | None = None,
) -> Slice:
    """Return applications with ids below `before`, newest first, after skipping `offset`.

    Filtered by `user_name` (no such user: an empty slice) or `user_id` (no such user:
    EntityDoesNotExist).
    """
    arguments: list[Any] = [before, size, offset]
    if user_id is not None:
        sql, arguments = _PAGE_BY_USER_ID_SQL, [*arguments, user_id]
    elif user_name is not None:
        sql, arguments = _PAGE_BY_USER_NAME_SQL, [*arguments, user_name]
    else:
        sql = PAGE_OF_ALL_SQL
    async with raw_connection(db) as connection:
        record = await connection.fetchrow(sql, *arguments)
    if record is None and user_id is not None:
        raise EntityDoesNotExist(USER_NOT_FOUND)
    return slice_of(record)
