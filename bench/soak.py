"""`make soak`: the service under a steady load for two minutes, on the real stack.

With two workers running, it measures the API's maximum POST rate (wrk, 10 s), then POSTs at
half of it for `--seconds`, sampling the RSS of the API and the workers every 5 s. It passes
when there were no errors, no process grew more than 10% after the warm-up, and within a
minute of the end the outbox backlog is 0 and every application is processed. Writes
bench/soak.json; the exit code is 1 if any condition failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.stack import BENCH, running, stack, start_api, start_worker, wait_assigned, wrk
from streamapp.logs import configure_logging

logger = logging.getLogger(__name__)

CONNECTIONS = 16
SAMPLE_EVERY = 5.0
GROWTH_LIMIT = 0.10


class RssSampler(threading.Thread):
    """Samples the resident memory of some processes while the load runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._done.wait(0 if not self.samples else SAMPLE_EVERY):
            rss = {name: p.memory_info().rss for name, p in self.processes.items()}
            self.samples.append((time.monotonic() - started, rss))

    def stop(self) -> None:
        self._done.set()
        self.join()

    def growth_after(self, warmup: float) -> dict[str, float]:
        """Each process's RSS growth from the first sample after the warm-up to the last."""
        warm = [rss for at, rss in self.samples if at >= warmup]
        first, last = warm[0], warm[-1]
        return {name: last[name] / first[name] - 1 for name in first}


async def settle(database_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until nothing is unpublished or unprocessed; return what was left and when."""
    connection = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        while True:
            backlog = await connection.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            waiting = await connection.fetchval(
                "SELECT count(*) FROM applications WHERE status = 'new'"
            )
            total = await connection.fetchval("SELECT count(*) FROM applications")
            took = time.monotonic() - started
            if (backlog == 0 and waiting == 0) or took > timeout:
                return {
                    "outbox_backlog": backlog,
                    "unprocessed": waiting,
                    "stored": total,
                    "settled_after_s": round(took, 1),
                }
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


def calibrate(target: str, rate: float) -> None:
    """Set the pause each connection makes after an answer so that they POST `rate` a second:
    a short run at a first guess tells how long a request takes at about that load."""
    cycle_ms = 1000 * CONNECTIONS / rate  # between one request's start and the next's
    os.environ["SOAK_DELAY_MS"] = str(round(cycle_ms))
    trial = wrk(target, seconds=3, script="soak.lua", connections=CONNECTIONS)
    request_ms = max(0.0, 1000 * CONNECTIONS / trial.requests_per_second - cycle_ms)
    os.environ["SOAK_DELAY_MS"] = str(max(0, round(cycle_ms - request_ms)))


async def soak(seconds: float, warmup: float, measure_seconds: float) -> dict[str, Any]:
    with stack() as servers:
        url = await servers.database("soak")
        env = servers.env(url)
        api = start_api(env)
        workers = [start_worker(env, wait=False) for _ in range(2)]
        with running(api, *workers):
            for worker in workers:
                worker.wait_ready()
            wait_assigned(workers)
            target = f"{api.url}/applications"
            maximum = wrk(target, seconds=measure_seconds, script="post.lua").requests_per_second
            rate = maximum / 2
            calibrate(target, rate)
            pids = {"api": api.process.pid}  # type: ignore[union-attr]
            pids |= {f"worker {i + 1}": w.process.pid for i, w in enumerate(workers)}  # type: ignore[union-attr]
            sampler = RssSampler(pids)
            sampler.start()
            try:
                load = wrk(target, seconds=seconds, script="soak.lua", connections=CONNECTIONS)
            finally:
                sampler.stop()
            end = await settle(url)
    growth = sampler.growth_after(warmup)
    checks = {
        "no errors": load.errors == 0,
        "RSS growth under 10% after warm-up": all(g < GROWTH_LIMIT for g in growth.values()),
        "outbox backlog 0 and all processed": end["outbox_backlog"] == 0
        and end["unprocessed"] == 0,
    }
    return {
        "seconds": seconds,
        "warmup_seconds": warmup,
        "max_post_rate": round(maximum),
        "target_rate": round(rate),
        "load": load.as_dict(),
        "rss_mib": {
            name: [round(rss[name] / 2**20, 1) for _, rss in sampler.samples] for name in pids
        },
        "rss_growth_after_warmup": {name: round(g, 4) for name, g in growth.items()},
        "end": end,
        "checks": checks,
        "passed": all(checks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="of steady load (120)")
    parser.add_argument("--warmup", type=float, default=30.0, help="not counted for RSS (30)")
    parser.add_argument("--measure-seconds", type=float, default=10.0, help="for the max rate")
    parser.add_argument("--output", type=Path, default=BENCH / "soak.json")
    arguments = parser.parse_args()
    configure_logging("INFO")
    result = asyncio.run(soak(arguments.seconds, arguments.warmup, arguments.measure_seconds))
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    load = result["load"]
    logger.info(
        "soak: %.0f s at %.0f req/s (half of %.0f): %d errors, p99 %.1f ms; RSS growth %s; "
        "end %s: %s",
        result["seconds"],
        load["requests_per_second"],
        result["max_post_rate"],
        load["errors"],
        load["p99_ms"],
        result["rss_growth_after_warmup"],
        result["end"],
        "passed" if result["passed"] else f"FAILED {result['checks']}",
    )
    raise SystemExit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
