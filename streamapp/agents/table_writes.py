"""What the agent writes to the stream tables: the latest counts of the batches held since
the last write (the delivery contract decides when, and acks the batches after)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from streamapp.minutes import first_kept_minute
from streamapp.models.records import UserCounts
from streamapp.services.processing import ProcessedBatch, UserCount
from streamapp.stream.tables import applications_per_user, set_minute_count
from streamapp.stream.topics import user_key


def write_counts(held: Sequence[ProcessedBatch]) -> None:
    """Write the counts the batches read back from PostgreSQL (later batches' win), only
    where they changed."""
    users: dict[str, UserCount] = {}
    minutes: dict[tuple[str, float], int] = {}
    for batch in held:
        users.update(batch.counts)
        minutes.update(batch.minutes)
    _write_users(users)
    _write_minutes(minutes)


def _write_users(users: dict[str, UserCount]) -> None:
    for user_name, count in users.items():
        key = user_key(user_name)
        row = UserCounts(processed=count.processed, last_processed_at=count.last_processed_at)
        stats = row.model_dump(mode="json")
        if applications_per_user.get(key) != stats:
            applications_per_user[key] = stats


def _write_minutes(minutes: dict[tuple[str, float], int]) -> None:
    oldest = first_kept_minute(time.time())
    for (user_name, start), processed in minutes.items():
        if start >= oldest:  # else past the hour the table keeps
            set_minute_count(user_name, start, processed)
