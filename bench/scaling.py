"""Scaling against the machine's own ceiling: the minimal processor (bench/minimal.py) as 1
and as 2 group members, and streamapp as 1 and as 2 workers, each draining the same large
backlog from a fresh broker, round after round in rotating order.

Each drain is timed from PostgreSQL itself: every processed row carries the time its batch
committed, so the rate, the records processed in each second and the longest pause between
two batches come from the rows; while the drain runs, nothing is polled but the partitions'
last records (`wait_drained`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import psutil

from bench.scenarios import (
    Backlog,
    Figure,
    Sizes,
    _publish_backlog,
    _reset,
    wait_drained,
    worker_events,
)
from bench.stack import MinimalProcessor, Stack, running, start_worker, vacuum
from streamapp.dev.processes import LoggedProcess
from streamapp.services.generator import Plan, generate

logger = logging.getLogger(__name__)

MINIMAL_1, MINIMAL_2 = "minimal processor, 1 member", "minimal processor, 2 members"
WORKERS_1, WORKERS_2 = "streamapp, 1 worker", "streamapp, 2 workers"
VARIANTS = (MINIMAL_1, MINIMAL_2, WORKERS_1, WORKERS_2)


@dataclass
class Drain:
    """One variant's drain of the backlog, from the rows it processed."""

    rate: float  # records/s from the first batch's commit to the last one's
    per_second: list[int]  # records processed in each second from the first batch on
    longest_gap_s: float  # the longest time between two batches' commits
    peak_rss_mib: float  # the largest resident memory of one of its processes
    events: dict[str, int]  # a worker's rebalances, fetch jumps and re-reads (summed)


async def scaling(stack: Stack, sizes: Sizes) -> list[Figure]:
    """The issue's scaling figures: streamapp's gain from a second worker against the minimal
    processor's gain from a second member, round by round, and one worker against one
    member."""
    url = await stack.database("scaling")
    total = sizes.scaling_backlog
    await generate(url, Plan(count=total, users=sizes.users, processed=False, prefix="scale"))
    await vacuum(url)
    drains: dict[str, list[Drain]] = {variant: [] for variant in VARIANTS}
    for index in range(sizes.scaling_rounds):
        order = VARIANTS[index % len(VARIANTS) :] + VARIANTS[: index % len(VARIANTS)]
        for variant in order:
            await _reset(url)
            with stack.fresh_kafka():
                backlog = await _publish_backlog(stack.kafka.bootstrap_servers, url)
                drain = await _drain(stack, url, backlog, total, variant)
            logger.info(
                "round %d, %s: %.0f records/s, longest gap %.2f s, peak RSS %.0f MiB, %s",
                *(index + 1, variant, drain.rate, drain.longest_gap_s, drain.peak_rss_mib),
                drain.events,
            )
            drains[variant].append(drain)
    return _figures(drains)


def _figures(drains: dict[str, list[Drain]]) -> list[Figure]:
    def rates(variant: str) -> list[float]:
        return [drain.rate for drain in drains[variant]]

    minimal_gain = [two / one for one, two in zip(rates(MINIMAL_1), rates(MINIMAL_2), strict=True)]
    ours_gain = [two / one for one, two in zip(rates(WORKERS_1), rates(WORKERS_2), strict=True)]
    timelines = {variant: [d.per_second for d in runs] for variant, runs in drains.items()}
    gaps = {variant: [round(d.longest_gap_s, 2) for d in runs] for variant, runs in drains.items()}
    gain = Figure(
        "2 workers' gain over 1, against the minimal processor's",
        "x",
        ours_gain,
        minimal_gain,
        0.9,
        baseline_name="minimal processor's 2 members over 1",
        notes={
            "rates": {variant: rates(variant) for variant in VARIANTS},
            "longest_gap_s": gaps,
            "peak_rss_mib": {v: [d.peak_rss_mib for d in runs] for v, runs in drains.items()},
            "worker_events": {v: [d.events for d in drains[v]] for v in (WORKERS_1, WORKERS_2)},
            "per_second": timelines,
        },
    )
    one = Figure(
        "1 worker against 1 minimal member, large backlog",
        "records/s",
        rates(WORKERS_1),
        rates(MINIMAL_1),
        0.5,
        baseline_name="minimal processor, 1 member",
    )
    return [gain, one]


async def _drain(stack: Stack, url: str, backlog: Backlog, total: int, variant: str) -> Drain:
    count = 2 if variant in (MINIMAL_2, WORKERS_2) else 1
    minimal = variant in (MINIMAL_1, MINIMAL_2)
    return await timed_drain(stack, url, backlog, total, count, minimal=minimal)


async def timed_drain(
    stack: Stack, url: str, backlog: Backlog, total: int, count: int, *, minimal: bool = False
) -> Drain:
    """Start `count` workers (or members of the minimal processor) on the backlog on the
    topic; stop them once all `total` records are processed; time the drain from the rows."""
    env = stack.env(url, LOG_LEVEL="INFO")
    processes: list[LoggedProcess]
    if minimal:
        processes = [MinimalProcessor(env, "bench-minimal").start() for _ in range(count)]
    else:
        processes = [start_worker(env, wait=False) for _ in range(count)]
    with running(*processes):
        peak = await _wait_processed(url, backlog, processes)
        events = _events(processes)
    return await _from_rows(url, total, peak, events)


async def _wait_processed(url: str, backlog: Backlog, processes: list[LoggedProcess]) -> float:
    """Wait until every record is processed; return the largest RSS (MiB) a process had."""
    peak = 0.0

    def sample_rss() -> None:
        nonlocal peak
        for process in processes:
            assert process.process is not None
            peak = max(peak, psutil.Process(process.process.pid).memory_info().rss / 2**20)

    await wait_drained(url, backlog, between_polls=sample_rss)
    return peak


def _events(processes: list[LoggedProcess]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for process in processes:  # the minimal processor's logs count nothing
        for name, count in worker_events(process.log()).items():
            counts[name] = counts.get(name, 0) + count
    return counts


_TIMELINE_SQL = """
WITH batches AS (
    SELECT processed_at AS at, count(*) AS records FROM applications
    WHERE processed_at IS NOT NULL GROUP BY processed_at
), bounds AS (SELECT min(at) AS first, max(at) AS last FROM batches),
seconds AS (
    SELECT floor(extract(epoch FROM at - first))::int AS second, sum(records) AS records
    FROM batches, bounds GROUP BY 1
)
SELECT
    (SELECT extract(epoch FROM last - first) FROM bounds) AS seconds,
    (SELECT array_agg(second ORDER BY second) FROM seconds) AS seconds_with_records,
    (SELECT array_agg(records ORDER BY second) FROM seconds) AS records,
    (SELECT max(extract(epoch FROM gap)) FROM (
        SELECT at - lag(at) OVER (ORDER BY at) AS gap FROM batches
    ) AS gaps) AS longest_gap
"""


async def _from_rows(url: str, total: int, peak_rss_mib: float, events: dict[str, int]) -> Drain:
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(_TIMELINE_SQL)
    finally:
        await connection.close()
    seconds = float(row["seconds"])
    per_second = [0] * (max(row["seconds_with_records"]) + 1)
    for second, records in zip(row["seconds_with_records"], row["records"], strict=True):
        per_second[second] = int(records)
    return Drain(
        rate=total / max(seconds, 1e-3),
        per_second=per_second,
        longest_gap_s=float(row["longest_gap"] or 0.0),
        peak_rss_mib=round(peak_rss_mib, 1),
        events=events,
    )
