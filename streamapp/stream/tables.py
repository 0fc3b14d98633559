"""The workers' stream tables (Faust), changelogged to Kafka and served by the web views.

Both tables live in the partitions of the users they count, the partitions of the users'
records: the worker that processes a user's records is the one that writes, owns and answers
for the user's rows, and a row is in exactly one changelog partition.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, cast

import faust
from faust.tables.wrappers import WindowWrapper
from typing_extensions import override

from streamapp.minutes import WINDOW_KEPT, WINDOW_SECONDS, first_kept_minute
from streamapp.stream.app import app
from streamapp.stream.topics import MINUTE_COUNTS_TABLE, USER_COUNTS_TABLE, partition_of, user_key


class UserTable(faust.Table):  # type: ignore[type-arg]
    """A table whose rows go to the partition of the user in their key, named explicitly.

    Keys are the user's name: as raw bytes (the key of the user's records), or first in a
    windowed key (user_name, (start, end)). Faust's choices do not fit: its partitioner
    would hash a windowed key's whole JSON and scatter one user's windows over every
    partition, away from the worker that counts them, and it needs the changelog topic's
    metadata in hand (a fresh worker's first batch crashed on it); the partition of the
    current event has no meaning for a batch. So the partition is derived from the user name
    as the topic's partitioner does for the user's records.
    """

    @override
    def partition_for_key(self, key: Any) -> int:
        user = key[0] if isinstance(key, tuple) else key
        name = user if isinstance(user, bytes) else user_key(user)
        return user_partition(name, self.app.conf.topic_partitions)


@lru_cache(maxsize=65536)
def user_partition(key: bytes, partitions: int) -> int:
    """The partition of a user's records and rows, by the user's key."""
    return partition_of(key, partitions)


def _table(table: UserTable) -> UserTable:
    app.tables.add(table)
    return table


# Processed applications per user: {"processed": n, "last_processed_at": ISO 8601}. Keys are
# bytes, serialized raw as the records' keys are, so table_route's look-up of a key's
# partition (Faust's partitioner) finds the same partition as the writes.
applications_per_user = _table(
    UserTable(
        app,
        name=USER_COUNTS_TABLE,
        key_type=bytes,
        beacon=app.tables.beacon,
        help="Processed applications per user, and when the last one was processed",
    )
)

# Processed applications per user and minute of created_at (event time), kept for an hour.
# A minute's count for the whole cluster is the sum over users, which live on every worker:
# the /stats/minutes/ view asks each worker for its part.
_per_user_minute = _table(
    UserTable(
        app,
        name=MINUTE_COUNTS_TABLE,
        key_type=str,
        default=int,
        beacon=app.tables.beacon,
        help="Processed applications per user and minute of creation, for the last hour",
    )
)
processed_per_minute = cast(
    WindowWrapper, _per_user_minute.tumbling(WINDOW_SECONDS, expires=WINDOW_KEPT)
)


def set_minute_count(user_name: str, start: float, processed: int) -> None:
    """Set a user's count for the minute starting at `start` (epoch seconds), if it changed."""
    window = processed_per_minute.relative_to(start)
    if window[user_name].value() != processed:
        window[user_name] = processed


def user_stats(value: Any) -> dict[str, Any]:
    """A row of applications_per_user as the views give it.

    Rows written before last_processed_at was kept are bare counts.
    """
    if isinstance(value, int):
        return {"processed": value, "last_processed_at": None}
    if isinstance(value, dict):
        return {
            "processed": int(value.get("processed", 0)),
            "last_processed_at": value.get("last_processed_at"),
        }
    return {"processed": 0, "last_processed_at": None}


def minute_counts(partitions: set[int], now: float) -> dict[float, int]:
    """Processed per minute start (epoch seconds) over the kept hour, summed over the users
    of the given partitions (standby copies of other partitions are left out)."""
    oldest = first_kept_minute(now)
    size = app.conf.topic_partitions
    counts: dict[float, int] = {}
    for (user_name, (start, _end)), processed in list(_per_user_minute.data.items()):
        if start >= oldest and user_partition(user_key(user_name), size) in partitions:
            counts[start] = counts.get(start, 0) + processed
    return counts
