"""Faust web views served by every worker: per-user stats and a summary of this worker."""

from __future__ import annotations

from typing import Any

from faust import web

from streamapp.app import app, applications_per_user
from streamapp.metrics import exposition

stats = web.Blueprint("stats")


@stats.route("/users/{user_name}/", name="user")
class UserStats(web.View):
    """Processed applications of one user, answered by the worker that owns the key."""

    @app.table_route(table=applications_per_user, match_info="user_name")  # type: ignore[arg-type]
    async def get(self, request: web.Request, user_name: str) -> web.Response:
        processed = applications_per_user[user_name.encode()]
        return self.json({"user_name": user_name, "processed": processed})


@stats.route("/", name="summary")
class Summary(web.View):
    """This worker's partitions and the users whose counts it holds."""

    async def get(self, request: web.Request) -> web.Response:
        assignment = sorted((tp.topic, tp.partition) for tp in app.consumer.assignment())
        local: dict[str, Any] = {
            key.decode(errors="replace"): value for key, value in applications_per_user.items()
        }
        return self.json(
            {
                "worker": f"{app.conf.web_host}:{app.conf.web_port}",
                "assignment": [{"topic": t, "partition": p} for t, p in assignment],
                "users": local,
                "total_processed": sum(local.values()),
            }
        )


stats.register(app, url_prefix="/stats/")


@app.page("/metrics/")
async def metrics(web_view: web.View, request: web.Request) -> web.Response:
    """This worker's Prometheus metrics."""
    body, content_type = exposition()
    return web_view.bytes(body, content_type=content_type.split(";")[0])
