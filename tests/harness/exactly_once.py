"""The judgement of a fault test: was every accepted application processed exactly once in
its effects, and how long did processing stop?"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import httpx

from tests.harness.effects import wait_processed
from tools.stack.processes import Worker, eventually

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a fault test reports: accepted, processed, lost, double effects, pauses."""

    name: str
    accepted: int
    processed: int
    lost: int
    double_effects: int
    longest_pause: float  # seconds with nothing processed while an application waited
    pause_began: float  # when, in seconds after the first processing
    end_to_end_p99: float  # seconds from created_at to processed_at
    end_to_end_max: float  # the longest any one application waited
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        figures = (
            f"accepted {self.accepted}, processed {self.processed}, lost {self.lost}, "
            f"double effects {self.double_effects}, longest pause {self.longest_pause:.2f} s "
            f"(from {self.pause_began:.1f} s), "
            f"end-to-end p99 {self.end_to_end_p99:.2f} s, max {self.end_to_end_max:.2f} s"
        )
        notes = "".join(f", {key} {value}" for key, value in self.notes.items())
        return f"{self.name}: {figures}{notes}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def judge(
    name: str,
    pg: asyncpg.Pool,
    accepted: list[int],
    *,
    workers: Sequence[Worker] = (),
    timeout: float = 120.0,
) -> Outcome:
    """Wait for the accepted applications to be processed, then count their effects.

    Lost: accepted and still not processed after `timeout`. Double effects: anything counted
    more (or less) than the processed rows: the users' processed counts, the per-minute
    counts in PostgreSQL, and the users' counts in the workers' stream table.
    """
    try:
        await wait_processed(pg, accepted, timeout=timeout)
    except AssertionError as exc:
        logger.error("%s: %s", name, exc)
    rows = await pg.fetch(
        "SELECT a.id, a.status, a.created_at, a.processed_at, u.user_name FROM applications a "
        "JOIN users u ON u.id = a.user_id WHERE a.id = ANY($1)",
        accepted,
    )
    done = [row for row in rows if row["status"] == "processed"]
    waits = [(row["processed_at"] - row["created_at"]).total_seconds() for row in done]
    pause, pause_began = longest_pause(
        [(row["created_at"].timestamp(), row["processed_at"].timestamp()) for row in done]
    )
    users = sorted({row["user_name"] for row in rows})
    double = await _counter_differences(pg, users)
    if workers:
        double += await _table_differences(pg, users, workers)
    return Outcome(
        name=name,
        accepted=len(accepted),
        processed=len(done),
        lost=len(accepted) - len(done),
        double_effects=double,
        longest_pause=pause,
        pause_began=pause_began,
        end_to_end_p99=percentile(waits, 99),
        end_to_end_max=max(waits, default=0.0),
    )


async def _counter_differences(pg: asyncpg.Pool, users: list[str]) -> int:
    """How far the users' counters in PostgreSQL are from their processed rows."""
    per_user = await pg.fetchval(
        "SELECT coalesce(sum(abs(u.processed_count - (SELECT count(*) FROM applications a "
        "WHERE a.user_id = u.id AND a.status = 'processed'))), 0) "
        "FROM users u WHERE u.user_name = ANY($1)",
        users,
    )
    per_minute = await pg.fetchval(
        "WITH rows AS (SELECT a.user_id, date_bin('1 minute', a.created_at, 'epoch') AS minute, "
        "count(*) AS processed FROM applications a JOIN users u ON u.id = a.user_id "
        "WHERE u.user_name = ANY($1) AND a.status = 'processed' GROUP BY 1, 2), "
        "kept AS (SELECT p.user_id, p.minute, p.processed FROM processed_per_minute p "
        "JOIN users u ON u.id = p.user_id WHERE u.user_name = ANY($1)) "
        "SELECT coalesce(sum(abs(coalesce(r.processed, 0) - coalesce(k.processed, 0))), 0) "
        "FROM rows r FULL JOIN kept k USING (user_id, minute)",
        users,
    )
    return int(per_user) + int(per_minute)


async def _table_differences(pg: asyncpg.Pool, users: list[str], workers: Sequence[Worker]) -> int:
    """How far the workers' stream table is from PostgreSQL's counts, once it has caught up
    (the table is written every half second; any worker answers for any user)."""
    expected = dict(
        await pg.fetch(
            "SELECT user_name, processed_count FROM users WHERE user_name = ANY($1)", users
        )
    )
    worker = workers[0]

    def table() -> dict[str, int | None]:
        counts: dict[str, int | None] = {}
        for user_name in users:
            response = httpx.get(
                f"{worker.url}/stats/users/{user_name}/", headers=worker.headers, timeout=5
            )
            counts[user_name] = (
                int(response.json()["processed"]) if response.status_code == 200 else None
            )
        return counts

    async def caught_up() -> dict[str, int | None] | None:
        counts = await asyncio.to_thread(table)
        return counts if counts == expected else None

    try:
        counts = await eventually(caught_up, timeout=30, interval=0.5)
    except AssertionError:
        counts = await asyncio.to_thread(table)
    return sum(abs((counts.get(user) or 0) - expected[user]) for user in users)


def longest_pause(spans: list[tuple[float, float]]) -> tuple[float, float]:
    """The longest time nothing was processed while some application waited, and when it
    began (seconds after the first processing).

    `spans` are (created, processed) moments. A gap between two processings counts only
    from when an application processed after it had been created: a quiet client is no
    pause.
    """
    if not spans:
        return 0.0, 0.0
    ordered = sorted(spans, key=lambda span: span[1])
    first = ordered[0][1]
    waiting_since = math.inf  # the oldest creation among the applications processed later
    longest = (0.0, 0.0)
    for index in range(len(ordered) - 1, 0, -1):
        waiting_since = min(waiting_since, ordered[index][0])
        before, at = ordered[index - 1][1], ordered[index][1]
        began = max(before, waiting_since)
        if at - began > longest[0]:
            longest = (at - began, began - first)
    return longest


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]
