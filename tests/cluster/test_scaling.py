"""Scaling out and in under a steady POST load: a third worker host joins and takes its share
of the partitions, then a worker leaves and the others take its share, with nothing lost."""

from __future__ import annotations

import asyncio

import asyncpg

from streamapp.stream.topics import NEW_APPLICATIONS
from tests.harness.exactly_once import Outcome, judge
from tools.stack.cluster import HostCluster
from tools.stack.load import SteadyLoad
from tools.stack.processes import Worker, eventually, split_between

RATE = 100.0


def shares(workers: list[Worker]) -> list[int]:
    """How many partitions each worker says it holds (its /stats/ view), fewest first."""
    return sorted(len(worker.assigned_partitions(NEW_APPLICATIONS)) for worker in workers)


async def test_a_worker_added_then_one_removed_under_load_spreads_the_work(
    healthy: HostCluster, cluster_pg: asyncpg.Pool, user_names: list[str], report: list[Outcome]
) -> None:
    first, second = healthy.workers["worker-1"], healthy.workers["worker-2"]
    partitions = int(first.env["TOPIC_PARTITIONS"])
    async with SteadyLoad(healthy.api_url, user_names, RATE) as load:
        await asyncio.sleep(5)
        third = await asyncio.to_thread(healthy.start_worker, "worker-3")
        await eventually(
            lambda: split_between([first, second, third]),
            timeout=90,
            message="the third worker got no share of the partitions",
        )
        out = await asyncio.to_thread(shares, [first, second, third])
        await asyncio.sleep(5)
        await asyncio.to_thread(first.stop)  # the load shares this loop
        await eventually(
            lambda: split_between([second, third]),
            timeout=90,
            message="the remaining workers did not take the stopped worker's partitions",
        )
        back_in = await asyncio.to_thread(shares, [second, third])
        await asyncio.sleep(5)
    outcome = await judge(
        "scale out to 3 workers, then in to 2", cluster_pg, load.accepted, workers=[second, third]
    )
    outcome.notes.update(shares_of_3=out, shares_of_2=back_in)
    report.append(outcome)
    assert out == [partitions // 3] * 3
    assert back_in == [partitions // 2] * 2
    assert set(load.statuses()) == {201}, (load.statuses(), load.unanswered())
    assert outcome.lost == 0
    assert outcome.double_effects == 0
