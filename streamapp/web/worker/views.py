"""The workers' Faust web views (aiohttp, on each worker): per-user stats, a summary, metrics."""

from __future__ import annotations

from aiokafka.errors import KafkaError
from faust import web
from faust.types import TP

from streamapp.metrics import CONSUMER_LAG, exposition
from streamapp.stream.app import app
from streamapp.stream.tables import applications_per_user
from streamapp.stream.topics import NEW_APPLICATIONS, partition_of, user_key

stats = web.Blueprint("stats")


@stats.route("/users/{user_name}/", name="user")
class UserStats(web.View):
    """Processed applications of one user, answered by the worker that owns the key."""

    @app.table_route(table=applications_per_user, match_info="user_name")  # type: ignore[arg-type]
    async def get(self, request: web.Request, user_name: str) -> web.Response:
        processed = applications_per_user[user_key(user_name)]
        return self.json({"user_name": user_name, "processed": processed})


@stats.route("/", name="summary")
class Summary(web.View):
    """This worker's partitions, and the users it owns (their records' partition is active here).

    The table also holds standby copies of other workers' keys; those are left out.
    """

    async def get(self, request: web.Request) -> web.Response:
        assignment = sorted((tp.topic, tp.partition) for tp in app.consumer.assignment())
        active = _active_partitions()
        partitions = app.conf.topic_partitions
        owned: dict[str, int] = {
            key.decode(errors="replace"): value
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
