"""One cluster of hosts for every test here (tools.stack.cluster): three Kafka brokers,
PostgreSQL, the API and the workers, each in a network namespace of its own, and this test
process on a client host. The tests cut links under a steady POST load and judge the effects.

They need root and iproute2/iptables; elsewhere they skip, saying why (or fail, with
CLUSTER_TESTS=required, as in CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.harness.exactly_once import Outcome
from tools.stack.cluster import HostCluster
from tools.stack.hosts import hosts_unavailable
from tools.stack.processes import eventually, split_between

OUTCOMES: list[Outcome] = []
STANDING_WORKERS = ("worker-1", "worker-2")


@pytest.fixture(scope="package")
def hosts() -> Iterator[HostCluster]:
    """The cluster, this thread on its client host (until the package's tests are done)."""
    reason = hosts_unavailable()
    if reason:
        message = f"the cluster tests make hosts of their own: {reason}"
        if os.environ.get("CLUSTER_TESTS") == "required":
            pytest.fail(message)  # CI runs as root: a skip there would hide a regression
        pytest.skip(message)
    started = HostCluster(workers=len(STANDING_WORKERS))
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="package")
async def cluster(hosts: HostCluster) -> AsyncIterator[HostCluster]:
    """The cluster, with asyncio.to_thread's threads on the client host too.

    A thread is born in the network namespace of the thread that starts it, so the loop
    gets a new thread pool now, and another one when the package is done.
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="client-host"))
    yield hosts
    loop.set_default_executor(ThreadPoolExecutor())


@pytest.fixture
async def cluster_pg(cluster: HostCluster) -> AsyncIterator[asyncpg.Pool]:
    """A pool of the test's own on the cluster's database, for reading effects back."""
    pool = await asyncpg.create_pool(
        cluster.database_url, min_size=1, max_size=2, timeout=5, command_timeout=10
    )
    yield pool
    await pool.close()


@pytest.fixture
async def healthy(cluster: HostCluster) -> HostCluster:
    """The cluster as every test starts it: every link up, the standing workers (and only
    they) running on the cluster's settings and holding the partitions between them."""
    assert cluster.network is not None
    for host in cluster.network.hosts.values():
        host.heal()
        host.unblock_all()
    for name, worker in list(cluster.workers.items()):
        if name not in STANDING_WORKERS and worker.process is not None:
            worker.stop()
    for name in STANDING_WORKERS:
        worker = cluster.workers.get(name)
        if worker is not None and cluster.worker_settings.get(name):
            worker.stop()  # started with settings of a test's own
        if worker is None or worker.process is None or worker.process.poll() is not None:
            cluster.start_worker(name, wait=False)
    standing = [cluster.workers[name] for name in STANDING_WORKERS]
    for worker in standing:
        await asyncio.to_thread(worker.wait_ready)
    await eventually(
        lambda: split_between(standing),
        timeout=90,
        message="the standing workers do not hold the partitions between them",
    )
    return cluster


async def restart_standing(cluster: HostCluster, settings: Callable[[str], dict[str, str]]) -> None:
    """Restart the standing workers, each with `settings(its name)` of its own, and wait
    until they hold the partitions between them (the next test's `healthy` undoes it)."""
    for name in STANDING_WORKERS:
        cluster.workers[name].stop()
        cluster.start_worker(name, settings=settings(name))
    standing = [cluster.workers[name] for name in STANDING_WORKERS]
    await eventually(lambda: split_between(standing), timeout=90)


@pytest.fixture
async def api_client(healthy: HostCluster) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API host, patient enough to see how long every answer takes."""
    assert healthy.api is not None
    async with httpx.AsyncClient(base_url=healthy.api.url, timeout=60) as client:
        yield client


@pytest.fixture
def user_names() -> list[str]:
    """Users no other test posts for: their counts are this test's alone."""
    return [f"h-{uuid.uuid4().hex[:8]}" for _ in range(12)]


@pytest.fixture
def report() -> Iterator[list[Outcome]]:
    """Outcomes the test reports; shown at the end of the run (and written to the file
    named by CLUSTER_FIGURES, if set)."""
    outcomes: list[Outcome] = []
    yield outcomes
    OUTCOMES.extend(outcomes)
    target = os.environ.get("CLUSTER_FIGURES")
    if target and outcomes:
        path = Path(target)
        saved = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(saved + [o.as_dict() for o in outcomes], indent=2))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if OUTCOMES:
        terminalreporter.section("cluster fault tests")
        for outcome in OUTCOMES:
            terminalreporter.write_line(outcome.line())
