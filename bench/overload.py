"""Graceful overload: far more connections than the API can serve, POSTs and listings in turn
(wrk -c1024 for a minute, then a burst of 5,000 connections) on one API process with a
worker processing, with load shedding (the defaults) and without it (API_MAX_CONCURRENCY=0,
no bound on the pool's wait).

What counts: every answer is a success or a 503 with Retry-After, decided quickly (no other
5xx, no reset, no timeout, none later than API_REQUEST_TIMEOUT); the p99 of the answers and
the API's memory stay bounded; once the load stops the next request is served at normal
latency within a second; and no application answered 201 is missing from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg
import httpx
import psutil

from bench.scenarios import Figure, Sizes
from bench.stack import (
    BENCH,
    Stack,
    percentile_ms,
    running,
    socket_errors,
    start_api,
    start_worker,
    wait_assigned,
)
from streamapp.config import Settings
from streamapp.services.generator import Plan, generate
from tools.stack.processes import Api

logger = logging.getLogger(__name__)

VARIANTS = {
    "shedding": {},
    "no shedding": {"API_MAX_CONCURRENCY": "0", "DB_POOL_TIMEOUT": "3600"},
}
# The bounds the shedding API is held to (with its default settings).
P99_BOUND_MS = 1_000.0  # API_QUEUE_TIMEOUT (0.5 s), then the request's own time
RSS_BOUND_MIB = 300.0
RECOVERY_BOUND_S = 1.0
DEADLINE_MS = 1000 * Settings.model_fields["api_request_timeout"].default
# wrk gives up on an answer after this: longer than any the API should take.
WRK_TIMEOUT_S = 15


@dataclass
class Flood:
    """What one flood of requests did."""

    connections: int
    answers_per_second: float
    created: int
    listed: int
    shed: int
    other: int  # answers other than 200, 201 and 503
    socket_errors: int  # connections refused or reset, reads and writes failed, timeouts
    p99_ms: float  # of every answer, as wrk saw it
    max_ms: float
    rss_mib: float  # the API's largest resident memory during the flood
    recovery_s: float  # from the flood's end to an answer at normal latency
    lost: int  # answered 201, yet not in PostgreSQL

    @property
    def failures(self) -> int:
        return self.other + self.socket_errors


async def overload(stack: Stack, sizes: Sizes) -> list[Figure]:
    url = await stack.database("overload")
    await generate(url, Plan(count=10_000, users=100, prefix="listed"))
    floods: dict[str, list[Flood]] = {variant: [] for variant in VARIANTS}
    for variant, settings in VARIANTS.items():
        api = start_api(stack.env(url, **settings))
        worker = start_worker(stack.env(url))  # as deployed: the applications get processed
        with running(api, worker):
            wait_assigned([worker])
            normal_ms = await asyncio.to_thread(_normal_latency_ms, api)
            for connections, seconds in (
                (sizes.flood_connections, sizes.flood_seconds),
                (sizes.burst_connections, sizes.burst_seconds),
            ):
                flood = await _flood(api, url, connections, seconds, normal_ms)
                logger.info("%s, %d connections: %s", variant, connections, flood)
                floods[variant].append(flood)
    return [
        figure
        for ours, without in zip(floods["shedding"], floods["no shedding"], strict=True)
        for figure in _figures(ours, without)
    ]


def _figures(ours: Flood, without: Flood) -> list[Figure]:
    what = f"overload, {ours.connections:,} connections"

    def bounded(
        name: str, unit: str, value: float, other: float, bound: float, label: str
    ) -> Figure:
        return Figure(
            f"{what}: {name}",
            unit,
            [value],
            [bound],
            1.0,
            higher_is_better=False,
            baseline_name=label,
            notes={"without_shedding": other},
        )

    def none_allowed(name: str, value: int, other: int) -> Figure:
        # The ratio's target is 0 against a baseline of 1: not one may happen.
        return Figure(
            f"{what}: {name}",
            "count",
            [value],
            [1],
            0.0,
            higher_is_better=False,
            baseline_name="none allowed",
            notes={"without_shedding": other},
        )

    return [
        Figure(
            f"{what}: answers/s",
            "answers/s",
            [ours.answers_per_second],
            [without.answers_per_second],
            None,
            baseline_name="without shedding",
            notes={"shed": ours.shed, "created": ours.created, "listed": ours.listed},
        ),
        bounded("p99 of every answer", "ms", ours.p99_ms, without.p99_ms, P99_BOUND_MS, "bound"),
        bounded("longest answer", "ms", ours.max_ms, without.max_ms, DEADLINE_MS, "deadline"),
        none_allowed("other 5xx, resets and timeouts", ours.failures, without.failures),
        bounded("API memory", "MiB", ours.rss_mib, without.rss_mib, RSS_BOUND_MIB, "bound"),
        bounded(
            "normal answer after the load",
            "s",
            ours.recovery_s,
            without.recovery_s,
            RECOVERY_BOUND_S,
            "bound",
        ),
        none_allowed("applications answered 201 but not stored", ours.lost, without.lost),
    ]


def _normal_latency_ms(api: Api) -> float:
    """The median latency of page 1 with nothing else going on."""
    with httpx.Client(base_url=api.url, timeout=10) as client:
        took = []
        for _ in range(20):
            started = time.perf_counter()
            client.get("/applications", params={"size": 10}).raise_for_status()
            took.append(1000 * (time.perf_counter() - started))
    return statistics.median(took)


async def _flood(
    api: Api, database_url: str, connections: int, seconds: float, normal_ms: float
) -> Flood:
    tag = f"overload-{uuid.uuid4().hex[:8]}"
    with _peak_rss(api) as peak:
        output = await asyncio.to_thread(_wrk, api.url, connections, seconds, tag)
    ended = time.monotonic()
    recovered = await asyncio.to_thread(_first_normal_answer, api, normal_ms)
    counts = {k: int(v) for k, v in re.findall(r"(created|listed|shed|other)=(\d+)", output)}
    stored = await _stored(database_url, tag)
    return Flood(
        connections=connections,
        answers_per_second=sum(counts.values()) / seconds,
        created=counts["created"],
        listed=counts["listed"],
        shed=counts["shed"],
        other=counts["other"],
        socket_errors=socket_errors(output),
        p99_ms=percentile_ms(output, "99%"),
        max_ms=float(re.search(r"max_ms=([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        rss_mib=peak[0] / 2**20,
        recovery_s=recovered - ended,
        lost=max(0, counts["created"] - stored),
    )


def _wrk(url: str, connections: int, seconds: float, tag: str) -> str:
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "--latency",
        "-s",
        str(BENCH / "overload.lua"),
        url,
    ]
    env = {"OVERLOAD_TAG": tag, "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout


@contextmanager
def _peak_rss(api: Api) -> Iterator[list[float]]:
    """Sample the API's resident memory while the block runs; [peak bytes] once it ends."""
    assert api.process is not None
    process, peak, stop = psutil.Process(api.process.pid), [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


def _first_normal_answer(api: Api, normal_ms: float, within: float = 60.0) -> float:
    """When page 1 is answered at normal latency again (twice the quiet median, or 20 ms
    more, whichever is larger)."""
    good_ms = max(2 * normal_ms, normal_ms + 20)
    deadline = time.monotonic() + within
    with httpx.Client(base_url=api.url, timeout=within) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = client.get("/applications", params={"size": 10})
            if answer.status_code == 200 and 1000 * (time.perf_counter() - started) <= good_ms:
                return time.monotonic()
            time.sleep(0.05)
    raise RuntimeError(f"no answer within {good_ms:.0f} ms for {within:.0f}s after the load")


async def _stored(database_url: str, tag: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        sql = "SELECT count(*) FROM applications WHERE description LIKE $1"
        return int(await connection.fetchval(sql, f"{tag} %"))
    finally:
        await connection.close()
