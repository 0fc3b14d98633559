"""Links cut under a steady POST load, on hosts of their own: a cut link hangs (packets are
dropped), it does not refuse. Each test judges every accepted application: processed exactly
once in its effects, and how long processing stopped."""

from __future__ import annotations

import asyncio
import time
from contextlib import closing
from functools import partial

import asyncpg
import httpx

from streamapp.config import Settings
from streamapp.stream.topics import NEW_APPLICATIONS, partition_of, user_key
from streamapp.web.worker.peers import PEER_TIMEOUT
from tests.cluster.conftest import restart_standing
from tests.harness.exactly_once import Outcome, judge
from tests.harness.topics import leading_most, topic_state
from tools.stack.cluster import HostCluster
from tools.stack.load import SteadyLoad
from tools.stack.processes import Worker, eventually, split_between

RATE = 100.0
API_DEADLINE = Settings.model_fields["api_request_timeout"].default
SESSION_TIMEOUT = 6.0  # the cluster's WORKER_SESSION_TIMEOUT
BROKER_CUT = 30.0  # longer than the workers' Kafka requests wait (15 s here)


async def unpublished(pg: asyncpg.Pool) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def outbox_empty(pg: asyncpg.Pool) -> bool:
    return await unpublished(pg) == 0


def answered_in_time(load: SteadyLoad, *statuses: int) -> None:
    """Every request got one of `statuses`, none later than the API's deadline."""
    assert set(load.statuses()) <= set(statuses), (load.statuses(), load.unanswered())
    assert load.slowest() <= API_DEADLINE + 1.0, "an answer waited past the API's deadline"


async def test_a_cut_database_host_answers_503_in_time_and_loses_nothing(
    healthy: HostCluster, cluster_pg: asyncpg.Pool, user_names: list[str], report: list[Outcome]
) -> None:
    postgres = healthy.host("postgres")
    async with SteadyLoad(healthy.api_url, user_names, RATE) as load:
        await asyncio.sleep(5)
        postgres.cut()
        await asyncio.sleep(20)
        postgres.heal()
        await asyncio.sleep(10)
    outcome = await judge(
        "database host cut 20 s", cluster_pg, load.accepted, workers=healthy.running_workers()
    )
    outcome.notes.update(answers=dict(load.statuses()), slowest_answer=round(load.slowest(), 2))
    report.append(outcome)
    answered_in_time(load, 201, 503)
    assert outcome.lost == 0
    assert outcome.double_effects == 0
    await eventually(partial(outbox_empty, cluster_pg), timeout=30)


async def test_a_worker_cut_off_past_its_session_hands_over_and_rejoins(
    healthy: HostCluster, cluster_pg: asyncpg.Pool, user_names: list[str], report: list[Outcome]
) -> None:
    cut_off, other = healthy.workers["worker-1"], healthy.workers["worker-2"]
    host = healthy.host("worker-1")
    async with SteadyLoad(healthy.api_url, user_names, RATE) as load:
        await asyncio.sleep(5)
        host.cut()
        cut_at = time.monotonic()
        await eventually(
            lambda: split_between([other]),
            timeout=60,
            message="the other worker did not take the cut-off worker's partitions",
        )
        handed_over = time.monotonic() - cut_at
        await asyncio.sleep(max(0.0, 3 * SESSION_TIMEOUT - (time.monotonic() - cut_at)))
        host.heal()
        healed_at = time.monotonic()
        await eventually(
            lambda: split_between([cut_off, other]),
            timeout=90,
            message="the worker did not get partitions again after the heal",
        )
        rejoined = time.monotonic() - healed_at
        await asyncio.sleep(5)
    outcome = await judge(
        "worker host cut 18 s", cluster_pg, load.accepted, workers=[cut_off, other]
    )
    outcome.notes.update(handed_over_s=round(handed_over, 1), rejoined_s=round(rejoined, 1))
    report.append(outcome)
    answered_in_time(load, 201)
    assert cut_off.process is not None
    assert cut_off.process.poll() is None, "the cut-off worker died instead of rejoining"
    assert outcome.lost == 0
    assert outcome.double_effects == 0


async def test_a_cut_broker_leading_most_partitions_pauses_processing_only_briefly(
    healthy: HostCluster, cluster_pg: asyncpg.Pool, user_names: list[str], report: list[Outcome]
) -> None:
    assert healthy.kafka is not None
    partitions, _ = await topic_state(healthy.kafka.bootstrap_servers)
    leader = leading_most(partitions)
    host = healthy.host(f"kafka-{leader}")
    async with SteadyLoad(healthy.api_url, user_names, RATE) as load:
        await asyncio.sleep(5)
        host.cut()
        await asyncio.sleep(BROKER_CUT)
        host.heal()
        await asyncio.sleep(10)
    outcome = await judge(
        f"broker {leader} (leading most partitions) cut {BROKER_CUT:g} s",
        cluster_pg,
        load.accepted,
        workers=healthy.running_workers(),
    )
    led = sum(1 for partition in partitions if partition["leader"] == leader)
    outcome.notes.update(partitions_led=led)
    report.append(outcome)
    answered_in_time(load, 201)
    assert outcome.lost == 0
    assert outcome.double_effects == 0


async def test_an_api_cut_from_the_brokers_files_into_the_outbox_and_relays_after(
    healthy: HostCluster, cluster_pg: asyncpg.Pool, user_names: list[str], report: list[Outcome]
) -> None:
    api = healthy.host("api")
    async with SteadyLoad(healthy.api_url, user_names, RATE) as load:
        await asyncio.sleep(5)
        api.block(*healthy.broker_hosts)
        await asyncio.sleep(15)
        backlog_during = await unpublished(cluster_pg)
        await asyncio.sleep(5)
        api.unblock(*healthy.broker_hosts)
        await asyncio.sleep(10)
    outcome = await judge(
        "API cut from the brokers 20 s",
        cluster_pg,
        load.accepted,
        workers=healthy.running_workers(),
    )
    outcome.notes.update(outbox_backlog_during=backlog_during)
    report.append(outcome)
    answered_in_time(load, 201)
    assert backlog_during > 0, "the cut did not hold the events back: nothing was tested"
    assert outcome.lost == 0
    assert outcome.double_effects == 0


def timed_get(
    worker: Worker, path: str, client: httpx.Client | None = None
) -> tuple[httpx.Response, float]:
    """A GET and its time (on `client`'s open connection, if given)."""
    get = httpx.get if client is None else client.get
    started = time.monotonic()
    response = get(f"{worker.url}{path}", headers=worker.headers, timeout=60)
    return response, time.monotonic() - started


def connected(worker: Worker) -> httpx.Client:
    """A client with a connection to the worker open already: a read timed through it is
    the worker's time, not a new connection's (a SYN lost as a link goes down is sent again
    a second later)."""
    client = httpx.Client()
    client.get(f"{worker.url}/healthz/", timeout=10).raise_for_status()
    return client


async def test_reads_that_need_a_cut_worker_name_it_instead_of_hanging(
    healthy: HostCluster, cluster_pg: asyncpg.Pool, user_names: list[str], report: list[Outcome]
) -> None:
    # Sessions longer than the reads' deadline: the reads must meet a silent worker, not a
    # group that has already given it up.
    await restart_standing(healthy, lambda _: {"WORKER_SESSION_TIMEOUT": "15"})
    asked, cut_off = healthy.workers["worker-1"], healthy.workers["worker-2"]
    host = healthy.host("worker-2")
    # A user whose records (and table rows) the worker to be cut holds.
    held_there = cut_off.assigned_partitions(NEW_APPLICATIONS)
    partitions = int(asked.env["TOPIC_PARTITIONS"])
    user_there = next(
        name
        for name in (f"{user_names[0]}-{n}" for n in range(1000))
        if partition_of(user_key(name), partitions) in held_there
    )

    def whole_minutes() -> httpx.Response | None:
        response, _ = timed_get(asked, "/stats/minutes/")
        return response if response.status_code == 200 else None

    async with SteadyLoad(healthy.api_url, [*user_names, user_there], RATE) as load:
        await asyncio.sleep(3)
        whole, _ = await asyncio.to_thread(timed_get, asked, "/stats/minutes/")
        with closing(connected(asked)) as minutes_client, closing(connected(asked)) as user_client:
            host.cut()
            (incomplete, took), (forwarded, forward_took) = await asyncio.gather(
                asyncio.to_thread(timed_get, asked, "/stats/minutes/", minutes_client),
                asyncio.to_thread(timed_get, asked, f"/stats/users/{user_there}/", user_client),
            )
        # Once the group has given the cut-off worker up, one worker answers for all.
        await eventually(lambda: split_between([asked]), timeout=60)
        alone = await eventually(whole_minutes, timeout=30)
        host.heal()
        await eventually(lambda: split_between([asked, cut_off]), timeout=90)
        await asyncio.sleep(3)
    outcome = await judge(
        "worker host cut during cluster-wide reads",
        cluster_pg,
        load.accepted,
        workers=[asked, cut_off],
    )
    outcome.notes.update(minutes_503_s=round(took, 2), forwarded_503_s=round(forward_took, 2))
    report.append(outcome)
    assert whole.status_code == 200
    assert whole.json()["workers"] == 2
    assert incomplete.status_code == 503
    assert incomplete.headers["Retry-After"] == "1"
    (missing,) = incomplete.json()["missing"]
    assert missing["worker"].rstrip("/") == cut_off.url
    assert sorted(missing["partitions"]) == sorted(held_there)
    assert took < PEER_TIMEOUT + 1.0
    assert forwarded.status_code == 503, forwarded.text
    assert forwarded.headers["Retry-After"] == "1"
    assert forward_took < PEER_TIMEOUT + 1.0
    assert alone.json()["workers"] == 1
    answered_in_time(load, 201)
    assert outcome.lost == 0
    assert outcome.double_effects == 0
