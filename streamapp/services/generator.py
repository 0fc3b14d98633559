"""Generated data (`streamapp generate`): N applications, their users and outbox rows.

Rows are streamed with COPY into a temporary table, then moved into `applications` and
`outbox` by one INSERT ... SELECT per chunk, so ids come from the usual sequence and the
data looks like the service wrote it: each application has its outbox row, already published.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from streamapp.models.tables import (
    MINUTES_KEPT_IN_DATABASE,
    PROCESSED_TOTAL,
    STATUS_NEW,
    STATUS_PROCESSED,
)
from streamapp.services.applications import EVENT_JSON
from streamapp.services.processing import MINUTE_OF_CREATION
from streamapp.stream.topics import NEW_APPLICATIONS

logger = logging.getLogger(__name__)

CHUNK = 50_000
WORDS = (
    *("laptop", "monitor", "keyboard", "chair", "desk", "licence", "course", "travel"),
    *("visa", "badge", "parking", "phone", "headset", "training", "conference", "book"),
    *("subscription", "repair", "upgrade", "access", "vacation"),
)

_CREATE_STAGING_SQL = """
CREATE TEMPORARY TABLE generated (
    user_id integer, description text, created_at timestamptz, processed_at timestamptz
) ON COMMIT DELETE ROWS
"""
_ENSURE_USERS_SQL = """
INSERT INTO users (user_name, created_at)
SELECT $1 || '-' || lpad(n::text, $3, '0'), $4::timestamptz FROM generate_series(1, $2) AS n
ON CONFLICT (user_name) DO NOTHING
"""
_USER_IDS_SQL = """
SELECT id FROM users WHERE user_name = ANY(
    SELECT $1 || '-' || lpad(n::text, $3, '0') FROM generate_series(1, $2) AS n
) ORDER BY id
"""
# One chunk: the applications, their outbox rows (published), and the processed counters the
# agent would have moved for them.
_MOVE_SQL = f"""
WITH inserted AS (
    INSERT INTO applications (user_id, description, status, created_at, processed_at)
    SELECT user_id, description, $1, created_at, processed_at FROM generated ORDER BY created_at
    RETURNING id, user_id, description, status, created_at, processed_at
), event AS (
    SELECT inserted.*, users.user_name FROM inserted JOIN users ON users.id = inserted.user_id
), queued AS (
    INSERT INTO outbox (topic, key, application_id, payload, created_at, published_at)
    SELECT $2, user_name, id, {EVENT_JSON}, created_at, created_at FROM event
), per_user AS (
    SELECT user_id, count(*) AS n, max(processed_at) AS last FROM inserted
    WHERE status = '{STATUS_PROCESSED}' GROUP BY user_id
), counted AS (
    UPDATE users SET processed_count = users.processed_count + per_user.n,
                     last_processed_at = greatest(users.last_processed_at, per_user.last)
    FROM per_user WHERE users.id = per_user.user_id
), per_minute AS (
    INSERT INTO processed_per_minute AS kept (minute, user_id, processed)
    SELECT {MINUTE_OF_CREATION}, user_id, count(*) FROM inserted
    WHERE status = '{STATUS_PROCESSED}'
      AND created_at >= now() - interval '{MINUTES_KEPT_IN_DATABASE} minutes'
    GROUP BY 1, 2
    ON CONFLICT (minute, user_id) DO UPDATE SET processed = kept.processed + EXCLUDED.processed
)
UPDATE totals SET value = totals.value + (SELECT coalesce(sum(n), 0) FROM per_user)
WHERE name = '{PROCESSED_TOTAL}'
"""  # noqa: S608


@dataclass(frozen=True)
class Plan:
    """What to generate: how many, over how many users, and whether they are processed."""

    count: int
    users: int
    processed: bool = True
    days: float = 30.0
    prefix: str = "user"
    seed: int = 7


async def generate(database_url: str, plan: Plan) -> int:
    """Load the planned applications; return how many were stored."""
    connection = await asyncpg.connect(database_url)
    try:
        user_ids = await _ensure_users(connection, plan)
        await connection.execute(_CREATE_STAGING_SQL)
        progress = Progress(plan.count)
        status = STATUS_PROCESSED if plan.processed else STATUS_NEW
        for chunk in _chunks(plan, user_ids):
            async with connection.transaction():
                await connection.copy_records_to_table("generated", records=chunk)
                await connection.execute(_MOVE_SQL, status, NEW_APPLICATIONS)
            progress.advance(len(chunk))
        await connection.execute("ANALYZE users, applications, outbox")
        progress.finish()
        return plan.count
    finally:
        await connection.close()


async def _ensure_users(connection: asyncpg.Connection, plan: Plan) -> list[int]:
    width = len(str(plan.users))
    since = datetime.now(UTC) - timedelta(days=plan.days)
    await connection.execute(_ENSURE_USERS_SQL, plan.prefix, plan.users, width, since)
    rows = await connection.fetch(_USER_IDS_SQL, plan.prefix, plan.users, width)
    return [row["id"] for row in rows]


def _chunks(plan: Plan, user_ids: list[int]) -> Iterator[list[tuple[object, ...]]]:
    """Yield the rows in chunks, oldest first, spread evenly over the last `plan.days`."""
    rng = random.Random(plan.seed)
    end = datetime.now(UTC)
    step = timedelta(days=plan.days) / max(plan.count, 1)
    start = end - step * plan.count
    delay = timedelta(milliseconds=150)
    for first in range(0, plan.count, CHUNK):
        chunk: list[tuple[object, ...]] = []
        for index in range(first, min(first + CHUNK, plan.count)):
            created_at = start + step * index
            description = f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{index + 1}"
            processed_at = created_at + delay if plan.processed else None
            chunk.append((rng.choice(user_ids), description, created_at, processed_at))
        yield chunk


class Progress:
    """A progress bar on a terminal; a log line every tenth of the way elsewhere."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._tty = sys.stderr.isatty()
        self._logged_tenths = 0

    def advance(self, rows: int) -> None:
        self.done += rows
        fraction = self.done / self.total if self.total else 1.0
        elapsed = time.monotonic() - self.started
        if self._tty:
            bar = "#" * int(fraction * 30)
            line = (
                f"\r[{bar:<30}] {fraction:4.0%} {self.done:,}/{self.total:,} rows {elapsed:5.1f}s"
            )
            sys.stderr.write(line)
            sys.stderr.flush()
        elif int(fraction * 10) > self._logged_tenths:
            self._logged_tenths = int(fraction * 10)
            logger.info("generated %d of %d applications (%.1fs)", self.done, self.total, elapsed)

    def finish(self) -> None:
        if self._tty:
            sys.stderr.write("\n")
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed else 0.0
        logger.info("generated %d applications in %.1fs (%.0f rows/s)", self.done, elapsed, rate)
