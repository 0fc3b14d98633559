"""The live dashboard's feed: what `GET /dashboard` shows, pushed to every open page.

Changes are pushed as they happen: the ids the processed feed announces (the workers' NOTIFY)
and the applications this API process files. A snapshot (latest applications, their users and
the busiest ones, per-minute counts, consumer lag, outbox backlog) is taken once a second per
API process while at least one page is open, however many are, and sent to all of them; it
also brings the applications filed through other API processes. Every query it runs reads an
index range of a fixed size, never a scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from databases import Database

from streamapp.db import UNAVAILABLE_ERRORS, raw_connection
from streamapp.minutes import first_kept_minute
from streamapp.models.schemas import ApplicationPublic
from streamapp.services.paging import iso_timestamp
from streamapp.stream.lag import GroupLag

logger = logging.getLogger(__name__)

LATEST = 15
BUSIEST_USERS = 10
SNAPSHOT_INTERVAL = 1.0
# How long a snapshot waits for each source (PostgreSQL, the lag from Kafka): one that is
# cut off shows as null, and the next snapshots still come every second.
SOURCE_TIMEOUT = 2.0
# A page that cannot keep up (its queue is full) loses the oldest messages; the next snapshot
# sets it right.
QUEUE_SIZE = 256

_LATEST_SQL = f"""
SELECT a.id, u.user_name, a.description, a.status,
       {iso_timestamp("a.created_at")}, {iso_timestamp("a.processed_at")}
FROM applications AS a JOIN users AS u ON u.id = a.user_id
ORDER BY a.id DESC LIMIT {LATEST}
"""  # noqa: S608
# The users of the latest applications and the busiest ones.
# Each user is looked up on its own (see streamapp.services.paging on OFFSET 0).
_USERS_SQL = f"""
SELECT shown.* FROM (
    SELECT user_id FROM (SELECT user_id FROM applications ORDER BY id DESC LIMIT {LATEST}) AS a
    UNION
    SELECT id FROM (
        SELECT id FROM users ORDER BY processed_count DESC, id DESC LIMIT {BUSIEST_USERS}
    ) AS b
) AS listed (id) CROSS JOIN LATERAL (
    SELECT user_name, processed_count AS processed, {iso_timestamp("last_processed_at")}
    FROM users WHERE users.id = listed.id OFFSET 0
) AS shown
ORDER BY processed DESC, user_name
"""  # noqa: S608
_MINUTES_SQL = """
SELECT extract(epoch FROM minute)::float8 AS start, sum(processed)::bigint AS processed
FROM processed_per_minute WHERE minute >= to_timestamp($1) GROUP BY minute
"""


@dataclass(frozen=True, slots=True)
class Message:
    """One Server-Sent Event: its type and its JSON data."""

    event: str
    data: str

    def encode(self) -> bytes:
        return f"event: {self.event}\ndata: {self.data}\n\n".encode()


class DashboardFeed:
    def __init__(
        self,
        *,
        db: Database,
        lag: GroupLag,
        backlog: Any,
        interval: float = SNAPSHOT_INTERVAL,
    ) -> None:
        self._db = db
        self._lag = lag
        self._backlog = backlog  # async () -> (size, oldest age in seconds)
        self._interval = interval
        self._pages: set[asyncio.Queue[Message | None]] = set()
        self._someone_watching = asyncio.Event()
        self._last: Message | None = None
        self._last_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._snapshots(), name="dashboard-snapshots")

    async def stop(self) -> None:
        self.close_pages()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._lag.close()

    def close_pages(self) -> None:
        """End every open event stream (the server is stopping)."""
        for queue in self._pages:
            _put(queue, None)

    @contextlib.contextmanager
    def page(self) -> Iterator[asyncio.Queue[Message | None]]:
        """A queue of the messages for one open page; None in it means the end."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue(QUEUE_SIZE)
        if self._last is not None and time.monotonic() - self._last_at < 2 * self._interval:
            queue.put_nowait(self._last)  # fresh: the page need not wait for the next one
        self._pages.add(queue)
        self._someone_watching.set()
        try:
            yield queue
        finally:
            self._pages.discard(queue)
            if not self._pages:
                self._someone_watching.clear()

    def application_filed(self, application: Mapping[str, Any]) -> None:
        """Tell the open pages of a new application (a stored row; shown as the API shows
        it, and only built when a page is open: most POSTs have none to tell)."""
        if self._pages:
            shown = ApplicationPublic.model_validate(application).model_dump_json()
            self._send(Message("created", shown))

    def applications_processed(self, ids: Sequence[int]) -> None:
        self._send(Message("processed", json.dumps({"ids": list(ids), "at": time.time()})))

    def _send(self, message: Message) -> None:
        for queue in self._pages:
            _put(queue, message)

    async def _snapshots(self) -> None:
        while True:
            await self._someone_watching.wait()
            started = time.monotonic()
            message = Message("snapshot", json.dumps(await self.snapshot()))
            self._last, self._last_at = message, time.monotonic()
            self._send(message)
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def snapshot(self) -> dict[str, Any]:
        """Everything the page shows; parts whose source is down (or silent) are null."""
        try:
            lag = await asyncio.wait_for(self._lag.measure(), SOURCE_TIMEOUT)
        except TimeoutError:
            lag = None
        try:
            database = await asyncio.wait_for(self._from_database(), SOURCE_TIMEOUT)
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("dashboard: PostgreSQL unavailable (%s)", exc)
            database = {"latest": None, "users": None, "minutes": None, "outbox": None}
        return {
            "at": time.time(),
            **database,
            "lag": None if lag is None else {str(p): n for p, n in sorted(lag.items())},
        }

    async def _from_database(self) -> dict[str, Any]:
        since = first_kept_minute(time.time())
        async with raw_connection(self._db) as connection:
            latest = await connection.fetch(_LATEST_SQL)
            users = await connection.fetch(_USERS_SQL)
            minutes = await connection.fetch(_MINUTES_SQL, since)
        size, oldest = await self._backlog()
        return {
            "latest": [dict(row) for row in latest],
            "users": [dict(row) for row in users],
            "minutes": {f"{row['start']:.0f}": row["processed"] for row in minutes},
            "outbox": {"backlog": size, "oldest_seconds": round(oldest, 3)},
        }


def _put(queue: asyncio.Queue[Message | None], message: Message | None) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest
    queue.put_nowait(message)
