"""The workers' Faust web views (aiohttp, on each worker): per-user stats, a summary, metrics."""

from __future__ import annotations

from faust import web

from streamapp.metrics import exposition
from streamapp.stream.app import app
from streamapp.stream.tables import applications_per_user, user_key
from streamapp.stream.topics import NEW_APPLICATIONS, partition_of

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
        active = {
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == NEW_APPLICATIONS
        }
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
                "users": owned,
                "total_processed": sum(owned.values()),
            }
        )


stats.register(app, url_prefix="/stats/")


@app.page("/metrics/")
async def metrics(web_view: web.View, request: web.Request) -> web.Response:
    """This worker's Prometheus metrics."""
    body, content_type = exposition()
    return web_view.bytes(body, content_type=content_type.split(";")[0])
