"""Workers form one consumer group: partitions are split, and move when a worker stops."""

from __future__ import annotations

import asyncio
import signal
import uuid

import asyncpg
import httpx
import pytest

from tests.harness.effects import TOPIC, post_applications, user_count, wait_processed
from tests.harness.settings import TEST_SETTINGS
from tools.stack.processes import eventually, http_json, wait_for

PARTITIONS = set(range(int(TEST_SETTINGS["TOPIC_PARTITIONS"])))


def split_is_complete(workers: list) -> bool:
    """True once every partition has exactly one owner and every worker owns some."""
    try:
        owned = [worker.assigned_partitions(TOPIC) for worker in workers]
    except OSError:
        return False
    every = [p for partitions in owned for p in partitions]
    return all(owned) and sorted(every) == sorted(PARTITIONS)


@pytest.mark.parametrize("count", [2, 3])
def test_workers_split_the_partitions(start_worker, count: int) -> None:
    workers = [start_worker(wait=False) for _ in range(count)]
    for worker in workers:
        worker.wait_ready()

    wait_for(lambda: split_is_complete(workers), timeout=60, message="partitions not split")

    owned = [worker.assigned_partitions(TOPIC) for worker in workers]
    assert all(len(partitions) == len(PARTITIONS) // count for partitions in owned)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
async def test_stopped_worker_partitions_move_and_nothing_is_lost(
    client: httpx.AsyncClient, pg: asyncpg.Pool, start_worker, stop_signal: int
) -> None:
    workers = [start_worker(wait=False) for _ in range(3)]
    for worker in workers:
        await asyncio.to_thread(worker.wait_ready)
    await eventually(lambda: split_is_complete(workers), timeout=60, message="partitions not split")
    users = [f"g-{uuid.uuid4().hex[:8]}" for _ in range(12)]

    first_half = await post_applications(client, users, 250)
    await asyncio.sleep(0.5)  # mid-stream
    victim = workers.pop(0)
    victim.stop(stop_signal)
    second_half = await post_applications(client, users, 250)
    ids = first_half + second_half

    await wait_processed(pg, ids, timeout=120)
    await eventually(lambda: split_is_complete(workers), timeout=60, message="no rebalance")
    expected = {
        row["user_name"]: row["n"]
        for row in await pg.fetch(
            "SELECT u.user_name, count(*) AS n FROM applications a JOIN users u "
            "ON u.id = a.user_id WHERE a.id = ANY($1) GROUP BY u.user_name",
            ids,
        )
    }
    assert sum(expected.values()) == 500
    # Any worker answers for any user (table_route forwards to the key's owner).
    await eventually(
        lambda: all(user_count(workers[0], name) == n for name, n in expected.items()),
        timeout=60,
        message="table counts differ from PostgreSQL",
    )
    assert all(user_count(workers[1], name) == n for name, n in expected.items())
    # Each user is owned by exactly one worker, which holds the same count.
    owned: dict[str, int] = {}
    for worker in workers:
        for name, count in http_json(f"{worker.url}/stats/")["users"].items():
            assert name not in owned, f"{name} owned twice"
            owned[name] = count
    assert {name: owned.get(name) for name in expected} == expected
