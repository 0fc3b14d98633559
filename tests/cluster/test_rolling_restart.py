"""Every worker restarted in turn under a steady POST load, as a deployment rolls out: with
Kafka static membership (WORKER_INSTANCE_ID) and without.

Without it, each stop and each start makes the whole group rebalance, and Faust's eager
rebalance stops every worker each time. With it, a worker that comes back within its session
timeout gets its own partitions back and the others never stop: only the restarting worker's
partitions wait for it.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from tests.cluster.conftest import STANDING_WORKERS, restart_standing
from tests.harness.exactly_once import Outcome, judge
from tools.stack.cluster import HostCluster
from tools.stack.load import SteadyLoad
from tools.stack.processes import eventually, split_between

RATE = 100.0
# Static members keep their partitions while away for at most the session timeout, so it
# must outlast a restart (about 5 s here); a crashed worker is noticed that late too.
STATIC_SESSION_TIMEOUT = "20"
STATIC_PAUSE_TARGET = 2.0


def membership(name: str, static: bool) -> dict[str, str]:
    if not static:
        return {}
    return {"WORKER_INSTANCE_ID": name, "WORKER_SESSION_TIMEOUT": STATIC_SESSION_TIMEOUT}


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
async def test_a_rolling_restart_of_every_worker_loses_nothing(
    healthy: HostCluster,
    cluster_pg: asyncpg.Pool,
    user_names: list[str],
    report: list[Outcome],
    static: bool,
) -> None:
    # The membership under test, before the load.
    await restart_standing(healthy, lambda name: membership(name, static))

    restarts: list[float] = []
    stopped_at: list[float] = []  # seconds into the load
    async with SteadyLoad(healthy.api_url, user_names, RATE) as load:
        await asyncio.sleep(5)
        for name in STANDING_WORKERS:
            started = time.monotonic()
            stopped_at.append(round(load.elapsed, 1))
            # In a thread: the load shares this loop, and a stop takes a second or two.
            await asyncio.to_thread(healthy.workers[name].stop)
            await asyncio.to_thread(healthy.start_worker, name, settings=membership(name, static))
            workers = [healthy.workers[n] for n in STANDING_WORKERS]
            await eventually(lambda: split_between(workers), timeout=90)  # noqa: B023
            restarts.append(round(time.monotonic() - started, 1))
            await asyncio.sleep(3)
        await asyncio.sleep(3)
    kind = "static" if static else "dynamic"
    outcome = await judge(
        f"rolling restart of {len(STANDING_WORKERS)} workers, {kind} membership",
        cluster_pg,
        load.accepted,
        workers=workers,
    )
    outcome.notes.update(restart_s=restarts, stopped_at_s=stopped_at)
    report.append(outcome)
    assert set(load.statuses()) == {201}, (load.statuses(), load.unanswered())
    assert outcome.lost == 0
    assert outcome.double_effects == 0
    if static:
        assert outcome.longest_pause <= STATIC_PAUSE_TARGET
