"""Applications: create (with user upsert and outbox row), read, list, mark processed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
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
from streamapp.models.tables import MINUTES_KEPT_IN_DATABASE, applications, users
from streamapp.services.outbox import OutboxEvent
from streamapp.services.paging import NEWEST, Slice, iso_timestamp, page_sql, slice_of

PROCESSED_CHANNEL = "applications_processed"

# The start of the minute an application was created in (UTC minutes, whatever the session's
# time zone), the key of the per-minute counts.
MINUTE_OF_CREATION = "date_bin('1 minute', created_at, timestamptz 'epoch')"

# The event's JSON, one key per field of the Kafka record (the columns of `inserted` below).
EVENT_JSON = "jsonb_build_object({})".format(", ".join(f"'{f}', {f}" for f in EVENT_FIELDS))

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
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, user_id, $1::text AS user_name, description, status, created_at, processed_at
), queued AS (
    INSERT INTO outbox (topic, key, application_id, payload, request_id)
    SELECT $5, user_name, id, {EVENT_JSON}, $6
    FROM inserted
    RETURNING id, topic, key, payload::text AS payload, request_id,
              extract(epoch FROM created_at)::float8 AS created
)
SELECT inserted.*, queued.id AS outbox_id, queued.topic, queued.key, queued.payload,
       queued.request_id, queued.created
FROM inserted, queued
"""

_BY_IDEMPOTENCY_KEY_SQL = """
SELECT a.id, a.user_id, u.user_name, a.description, a.status, a.created_at,
       a.processed_at, a.request_hash
FROM applications AS a JOIN users AS u ON u.id = a.user_id
WHERE a.idempotency_key = $1
"""

# One statement per batch: move what is still new, add it to the counters of its users and to
# the processed total, and return the counters of every user the batch named or moved (moved
# or not, so a table that missed an update after a crash is set right by a redelivery), with
# the ids that name no application at all. The ids moved are announced on the
# `applications_processed` channel (delivered at commit, in chunks within NOTIFY's 8000-byte
# payload limit) for the API's waiters (`GET /applications/{id}?wait=`).
_PROCESS_SQL = f"""
WITH moved AS (
    UPDATE applications SET status = 'processed', processed_at = now()
    WHERE id = ANY($1::integer[]) AND status = 'new'
    RETURNING id, user_id, processed_at, created_at
), per_user AS (
    SELECT user_id, count(*) AS n, max(processed_at) AS last FROM moved GROUP BY user_id
), counted AS (
    UPDATE users SET processed_count = users.processed_count + per_user.n,
                     last_processed_at = per_user.last
    FROM per_user WHERE users.id = per_user.user_id
    RETURNING users.id, users.processed_count, users.last_processed_at
), total AS (
    UPDATE totals SET value = totals.value + (SELECT count(*) FROM moved)
    WHERE totals.name = 'processed' AND EXISTS (SELECT 1 FROM moved)
), per_minute AS (
    SELECT {MINUTE_OF_CREATION} AS minute, user_id, count(*) AS n FROM moved GROUP BY 1, 2
), minutes_counted AS (
    INSERT INTO processed_per_minute AS kept (minute, user_id, processed)
    SELECT minute, user_id, n FROM per_minute
    ON CONFLICT (minute, user_id) DO UPDATE SET processed = kept.processed + EXCLUDED.processed
    RETURNING minute, user_id, processed
), minutes AS (
    SELECT u.user_name, asked.minute, coalesce(c.processed, kept.processed) AS processed
    FROM unnest($3::text[], $4::timestamptz[]) AS asked (user_name, minute)
    JOIN users AS u ON u.user_name = asked.user_name
    LEFT JOIN minutes_counted AS c ON c.minute = asked.minute AND c.user_id = u.id
    LEFT JOIN processed_per_minute AS kept
           ON kept.minute = asked.minute AND kept.user_id = u.id
    WHERE coalesce(c.processed, kept.processed) IS NOT NULL
), announced AS (
    SELECT pg_notify('{PROCESSED_CHANNEL}', string_agg(id::text, ',')) FROM (
        SELECT id, (row_number() OVER ()) / 500 AS chunk FROM moved
    ) AS numbered GROUP BY chunk
)
SELECT (SELECT array_agg(id) FROM moved) AS moved,
       (SELECT count(*) FROM announced) AS announcements,
       (SELECT array_agg(asked) FROM unnest($1::integer[]) AS asked
        WHERE asked NOT IN (SELECT id FROM moved)
          AND NOT EXISTS (SELECT 1 FROM applications WHERE id = asked)) AS unknown,
       (SELECT array_agg(user_name ORDER BY user_name, minute) FROM minutes) AS minute_users,
       (SELECT array_agg(extract(epoch FROM minute)::float8 ORDER BY user_name, minute)
        FROM minutes) AS minute_starts,
       (SELECT array_agg(processed ORDER BY user_name, minute) FROM minutes) AS minute_counts,
       named.*
FROM (SELECT) AS always_one_row LEFT JOIN (
    SELECT u.user_name,
           coalesce(c.processed_count, u.processed_count) AS processed_count,
           coalesce(c.last_processed_at, u.last_processed_at) AS last_processed_at
    FROM users AS u LEFT JOIN counted AS c ON c.id = u.id
    WHERE u.user_name = ANY($2::text[]) OR u.id IN (SELECT user_id FROM per_user)
) AS named ON true
"""

# Minutes older than the database keeps (the stream table keeps one hour of them).
_PRUNE_MINUTES_SQL = f"""
DELETE FROM processed_per_minute
WHERE minute < now() - interval '{MINUTES_KEPT_IN_DATABASE} minutes'
"""

# The listings: ids by index (a keyset below `before`, or an offset), then their rows. The
# total is one user's processed count plus their applications still new, or the processed
# total plus every application still new: counters and a small partial index, never a scan.
_ROWS = f"""
SELECT a.id, a.user_id, u.user_name, a.description, a.status,
       {iso_timestamp("a.created_at")}, {iso_timestamp("a.processed_at")}
FROM page JOIN applications AS a ON a.id = page.id JOIN users AS u ON u.id = a.user_id
"""
_TOTAL_OF_ONE = """
SELECT users.id AS user_id, users.processed_count + (
    SELECT count(*) FROM applications WHERE user_id = users.id AND status = 'new'
) AS total
FROM users WHERE {match}
"""
_OF_ONE = "SELECT id FROM applications WHERE id < $1 AND user_id = (SELECT user_id FROM total)"
_PAGE_OF_ALL_SQL = page_sql(
    total="""
        SELECT (SELECT value FROM totals WHERE name = 'processed')
             + (SELECT count(*) FROM applications WHERE status = 'new') AS total
    """,
    ids="SELECT id FROM applications WHERE id < $1",
    rows=_ROWS,
)
_PAGE_BY_USER_ID_SQL = page_sql(
    total=_TOTAL_OF_ONE.format(match="users.id = $4"), ids=_OF_ONE, rows=_ROWS
)
_PAGE_BY_USER_NAME_SQL = page_sql(
    total=_TOTAL_OF_ONE.format(match="users.user_name = $4"), ids=_OF_ONE, rows=_ROWS
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
    fingerprint: str | None = None,
) -> Created | Replayed:
    """Store an application and its outbox event; replay the first result for a reused key.

    `fingerprint` is the request's `request_hash`, when the caller has it already.
    """
    if idempotency_key and fingerprint is None:
        fingerprint = request_hash(application_in)
    async with raw_connection(db) as connection:
        for _ in range(_CREATE_ATTEMPTS):
            row = await connection.fetchrow(
                _CREATE_SQL,
                application_in.user_name,
                application_in.description,
                idempotency_key,
                fingerprint,
                topic,
                request_id,
            )
            if row is not None:
                return created_from_row(row)
            if idempotency_key is not None:
                first = await connection.fetchrow(_BY_IDEMPOTENCY_KEY_SQL, idempotency_key)
                if first is not None:
                    return _replay(dict(first), fingerprint)
    raise RuntimeError("could not store the application after repeated user-creation races")


def created_from_row(row: Any) -> Created:
    """The result of a create statement's row: the application and its outbox event."""
    application = {column: row[column] for column in _APPLICATION_COLUMNS}
    event = OutboxEvent(
        row["outbox_id"],
        row["topic"],
        row["key"],
        row["payload"].encode(),
        row["request_id"],
        row["created"],
    )
    return Created(application, event)


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
        sql = _PAGE_OF_ALL_SQL
    async with raw_connection(db) as connection:
        record = await connection.fetchrow(sql, *arguments)
    if record is None and user_id is not None:
        raise EntityDoesNotExist(USER_NOT_FOUND)
    return slice_of(record)


@dataclass(frozen=True, slots=True)
class UserCount:
    """A user's processed applications, as stored with the batch that counted them."""

    processed: int
    last_processed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProcessedBatch:
    """What one batch did: the ids it moved, those that name no application, and the counts
    of every user it named or moved."""

    moved: frozenset[int]
    unknown: frozenset[int]
    counts: dict[str, UserCount]
    # Processed per (user name, minute start in epoch seconds), for each pair the batch named.
    minutes: dict[tuple[str, float], int]


async def mark_processed(
    *,
    db: Database,
    application_ids: Sequence[int],
    user_names: Sequence[str],
    user_minutes: Collection[tuple[str, datetime]] = (),
) -> ProcessedBatch:
    """Move the given applications from new to processed, counting them for their users and
    their minutes of creation; return the counts of the given users and (user, minute) pairs.

    Applications already processed (a redelivered record) move and count nothing.
    """
    pair_users = [user_name for user_name, _ in user_minutes]
    pair_minutes = [minute for _, minute in user_minutes]
    async with raw_connection(db) as connection:
        rows = await connection.fetch(
            _PROCESS_SQL, list(application_ids), list(user_names), pair_users, pair_minutes
        )
    first = rows[0]
    moved = frozenset(first["moved"] or ())
    unknown = frozenset(first["unknown"] or ())
    minutes = {
        (user_name, start): processed
        for user_name, start, processed in zip(
            first["minute_users"] or (),
            first["minute_starts"] or (),
            first["minute_counts"] or (),
            strict=True,
        )
    }
    counts = {
        row["user_name"]: UserCount(row["processed_count"], row["last_processed_at"])
        for row in rows
        if row["user_name"] is not None
    }
    return ProcessedBatch(moved, unknown, counts, minutes)


async def prune_minutes(db: Database) -> None:
    """Forget per-minute counts older than the database keeps."""
    await db.execute(_PRUNE_MINUTES_SQL)
