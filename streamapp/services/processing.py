"""The workers' statements: mark a batch of applications processed, prune old minutes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from databases import Database

from streamapp.db import raw_connection
from streamapp.models.tables import (
    MINUTES_KEPT_IN_DATABASE,
    PROCESSED_TOTAL,
    STATUS_NEW,
    STATUS_PROCESSED,
)

PROCESSED_CHANNEL = "applications_processed"

# The start of the minute an application was created in (UTC minutes, whatever the session's
# time zone), the key of the per-minute counts.
MINUTE_OF_CREATION = "date_bin('1 minute', created_at, timestamptz 'epoch')"

# Minutes older than this are pruned (`_PRUNE_MINUTES_SQL`): a batch of old applications (a
# replayed topic, a backlog hours deep) does not count them only to have them deleted.
FIRST_KEPT_MINUTE = f"now() - interval '{MINUTES_KEPT_IN_DATABASE} minutes'"

# One statement per batch: move what is still new, add it to the counters of its users and to
# the processed total, and return the counters of every user the batch named or moved (moved
# or not, so a table that missed an update after a crash is set right by a redelivery), with
# the ids that name no application at all. The ids moved are announced on the
# `applications_processed` channel (delivered at commit, in chunks within NOTIFY's 8000-byte
# payload limit) for the API's waiters (`GET /applications/{id}?wait=`).
_PROCESS_SQL = f"""
WITH moved AS (
    UPDATE applications SET status = '{STATUS_PROCESSED}', processed_at = now()
    WHERE id = ANY($1::integer[]) AND status = '{STATUS_NEW}'
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
    WHERE totals.name = '{PROCESSED_TOTAL}' AND EXISTS (SELECT 1 FROM moved)
), per_minute AS (
    SELECT * FROM (
        SELECT {MINUTE_OF_CREATION} AS minute, user_id, count(*) AS n FROM moved GROUP BY 1, 2
    ) AS counted_minutes WHERE minute >= {FIRST_KEPT_MINUTE}
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
"""  # noqa: S608 (fixed pieces)

# Minutes older than the database keeps (the stream table keeps one hour of them).
_PRUNE_MINUTES_SQL = f"""
DELETE FROM processed_per_minute WHERE minute < {FIRST_KEPT_MINUTE}
"""  # noqa: S608 (fixed pieces)


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
