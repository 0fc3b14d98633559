"""The workers' Faust web views (aiohttp, on each worker): per-user stats, the cluster's
per-minute counts, a summary, metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
from aiokafka.errors import KafkaError
from faust import web
from faust.types import TP
from typing_extensions import override

from streamapp.config import get_settings
from streamapp.metrics import CONSUMER_LAG, exposition
from streamapp.minutes import minutes_shown
from streamapp.stream.app import app
from streamapp.stream.tables import (
    applications_per_user,
    minute_counts,
    processed_per_minute,
    user_stats,
)
from streamapp.stream.topics import NEW_APPLICATIONS, partition_of, user_key
from streamapp.web.worker.auth import bearer
from streamapp.web.worker.peers import PEER_TIMEOUT

stats = web.Blueprint("stats")


@stats.route("/users/{user_name}/", name="user")
class UserStats(web.View):
    """Processed applications of one user, answered by the worker that owns the key."""

    @app.table_route(table=applications_per_user, match_info="user_name")  # type: ignore[arg-type]
    @override
    async def get(self, request: web.Request, user_name: str) -> web.Response:
        stats = user_stats(applications_per_user.get(user_key(user_name)))
        return self.json({"user_name": user_name, **stats})


class PartUnavailable(Exception):
    """A worker's part of a cluster-wide answer is missing or incomplete."""

    def __init__(self, detail: str, missing: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.missing = missing or []  # each: the worker, its partitions, why


@stats.route("/minutes/", name="minutes")
class ClusterMinutes(web.View):
    """The whole cluster's processed applications per minute of creation, last hour.

    Each minute's count is spread over the workers (it is a sum over users, who live in every
    partition), so this worker asks every worker that owns partitions of the table, itself
    included, for its part, and merges them: a scatter-gather on the group's assignment, as
    Kafka Streams' metadata API allows. Parts must cover every partition exactly once; during
    a rebalance they cannot, and the answer is a 503. So is a worker that does not answer
    within PEER_TIMEOUT (on a cut link it would never answer): the 503 names it and the
    partitions it holds, under `missing`.
    """

    @override
    async def get(self, request: web.Request) -> web.Response:
        try:
            parts = await _gather_parts()
        except PartUnavailable as exc:
            return self.json(
                {"error": "unavailable", "detail": str(exc), "missing": exc.missing},
                status=503,
                headers={"Retry-After": "1"},
            )
        totals: dict[float, int] = {}
        for part in parts:
            for entry in part["minutes"]:
                start = datetime.fromisoformat(entry["minute"]).timestamp()
                totals[start] = totals.get(start, 0) + entry["processed"]
        return self.json({"minutes": _minute_list(totals), "workers": len(parts)})


@stats.route("/minutes/local/", name="local-minutes")
class LocalMinutes(web.View):
    """This worker's part of /stats/minutes/: the users of its active partitions."""

    @override
    async def get(self, request: web.Request) -> web.Response:
        try:
            return self.json(_local_part())
        except PartUnavailable as exc:
            return self.json({"error": "unavailable", "detail": str(exc)}, status=503)


def _local_part() -> dict[str, Any]:
    if app.rebalancing or cast(Any, app.tables).recovery.in_recovery:
        raise PartUnavailable(f"{app.conf.canonical_url} is rebalancing")
    active = _table_partitions().get(str(app.conf.canonical_url), set())
    counts = minute_counts(active, time.time())
    return {
        "worker": str(app.conf.canonical_url),
        "partitions": sorted(active),
        "minutes": _minute_list(counts),
    }


def _table_partitions() -> dict[str, set[int]]:
    """Each worker's active partitions of the per-minute table, from the group assignment."""
    topic = processed_per_minute.table.changelog_topic.get_topic_name()
    return {
        url: set(topics.get(topic, ()))
        for url, topics in app.router.table_metadata(processed_per_minute.table.name).items()
    }


async def _gather_parts() -> list[dict[str, Any]]:
    owners = {url: parts for url, parts in _table_partitions().items() if parts}
    if not owners:
        raise PartUnavailable("no worker owns partitions yet")
    urls = sorted(owners)
    answers = await asyncio.gather(*(_part_of(url) for url in urls), return_exceptions=True)
    failed = {
        url: answer
        for url, answer in zip(urls, answers, strict=True)
        if isinstance(answer, PartUnavailable)
    }
    if failed:
        missing = [
            {"worker": url, "partitions": sorted(owners[url]), "reason": str(error)}
            for url, error in failed.items()
        ]
        raise PartUnavailable(f"no part from {', '.join(failed)}", missing)
    parts = [answer for answer in answers if isinstance(answer, dict)]
    if len(parts) != len(answers):
        raise next(answer for answer in answers if isinstance(answer, BaseException))
    seen: list[int] = [p for part in parts for p in part["partitions"]]
    expected = sorted(p for partitions in owners.values() for p in partitions)
    if sorted(seen) != expected or len(expected) != app.conf.topic_partitions:
        raise PartUnavailable("the workers' parts do not cover every partition once")
    return list(parts)


async def _part_of(url: str) -> dict[str, Any]:
    if url == str(app.conf.canonical_url):
        return _local_part()
    try:
        async with app.http_client.get(
            f"{url.rstrip('/')}/stats/minutes/local/",
            timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT),
            headers=_auth_headers(),
        ) as response:
            if response.status != 200:
                raise PartUnavailable(f"{url} answered {response.status}")
            part: dict[str, Any] = await response.json()
            return part
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PartUnavailable(f"{url} did not answer ({exc!r})") from exc


def _auth_headers() -> dict[str, str]:
    token = get_settings().worker_web_token
    return bearer(token.get_secret_value()) if token else {}


def _minute_list(counts: dict[float, int]) -> list[dict[str, Any]]:
    """Every minute of the kept hour, oldest first, with its count (0 where none)."""
    return [
        {
            "minute": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
            "processed": counts.get(start, 0),
        }
        for start in minutes_shown(time.time())
    ]


@stats.route("/", name="summary")
class Summary(web.View):
    """This worker's partitions, and the users it owns (their records' partition is active here).

    The table also holds standby copies of other workers' keys; those are left out.
    """

    @override
    async def get(self, request: web.Request) -> web.Response:
        assignment = sorted((tp.topic, tp.partition) for tp in app.consumer.assignment())
        active = _active_partitions()
        partitions = app.conf.topic_partitions
        owned: dict[str, int] = {
            key.decode(errors="replace"): user_stats(value)["processed"]
            for key, value in applications_per_user.items()
            if partition_of(key, partitions) in active
        }
        return self.json(
            {
                "worker": f"{app.conf.web_host}:{app.conf.web_port}",
                "assignment": [{"topic": t, "partition": p} for t, p in assignment],
                "active_partitions": sorted(active),
                "partitions": await _partition_progress(active),
                "flow": _flow(),
                "users": owned,
                "total_processed": sum(owned.values()),
            }
        )


def _active_partitions() -> set[int]:
    """The partitions of new_applications this worker processes (not its standbys)."""
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == NEW_APPLICATIONS}


async def _partition_progress(active: set[int]) -> list[dict[str, int | None]]:
    """Per active partition of new_applications: where the worker reads, and its lag."""
    consumer = app.consumer
    progress = []
    for partition in sorted(active):
        tp = TP(NEW_APPLICATIONS, partition)
        try:
            position = await consumer.position(tp)
        except KafkaError:  # revoked since the assignment was read
            continue
        highwater = consumer.highwater(tp)
        lag = None if position is None or highwater is None else max(highwater - position, 0)
        progress.append(
            {"partition": partition, "position": position, "highwater": highwater, "lag": lag}
        )
    return progress


def _flow() -> dict[str, object]:
    """Whether the worker is fetching: during a rebalance or a recovery it is not."""
    consumer = app.consumer
    paused: set[TP] = getattr(consumer, "_paused_partitions", set())
    return {
        "fetching": bool(getattr(consumer, "flow_active", True) and app.flow_control.is_active()),
        "rebalancing": bool(app.rebalancing),
        "paused": sorted(f"{tp.topic}[{tp.partition}]" for tp in paused),
    }


stats.register(app, url_prefix="/stats/")


@app.page("/metrics/")
async def metrics(web_view: web.View, request: web.Request) -> web.Response:
    """This worker's Prometheus metrics (consumer lag measured for each scrape)."""
    CONSUMER_LAG.clear()  # partitions no longer owned drop out
    for progress in await _partition_progress(_active_partitions()):
        if progress["lag"] is not None:
            CONSUMER_LAG.labels(str(progress["partition"])).set(progress["lag"])
    body, content_type = exposition()
    return web_view.bytes(body, content_type=content_type.split(";")[0])
