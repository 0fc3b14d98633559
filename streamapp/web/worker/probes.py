"""A worker's liveness and readiness, for an orchestrator: Kubernetes probes, compose
healthchecks. Neither needs WORKER_WEB_TOKEN (they tell nothing about the data).

- `/healthz/`: 200 as long as the worker's event loop answers at all.
- `/readyz/`: 200 only when the worker does its job: it holds partitions, no rebalance or
  table recovery is under way, and PostgreSQL answers. Otherwise 503 with the reasons.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust import web

from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.stream.app import app
from streamapp.stream.topics import NEW_APPLICATIONS
from streamapp.web.worker.auth import HEALTH_PATH, READY_PATH

# How long readiness waits for PostgreSQL's answer.
DATABASE_TIMEOUT = 2.0


@app.page(HEALTH_PATH)
async def healthz(view: web.View, request: web.Request) -> web.Response:
    """Alive: the worker's event loop answers."""
    return view.json({"status": "alive"})


@app.page(READY_PATH)
async def readyz(view: web.View, request: web.Request) -> web.Response:
    """Ready: partitions held, no rebalance or recovery under way, PostgreSQL answering."""
    reasons = _stream_reasons() + await _database_reasons()
    if reasons:
        return view.json(
            {"status": "not ready", "reasons": reasons}, status=503, headers={"Retry-After": "1"}
        )
    return view.json({"status": "ready", "partitions": sorted(_held())})


def _held() -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == NEW_APPLICATIONS}


def _stream_reasons() -> list[str]:
    reasons = []
    if app.rebalancing:
        reasons.append("the consumer group is rebalancing")
    elif cast(Any, app.tables).recovery.in_recovery:
        reasons.append("recovering its tables from their changelogs")
    elif not _held():
        reasons.append(f"holds no partition of {NEW_APPLICATIONS} yet")
    return reasons


async def _database_reasons() -> list[str]:
    database = getattr(app, "database", None)
    if database is None:
        return ["not connected to PostgreSQL yet"]
    try:
        await asyncio.wait_for(database.fetch_val("SELECT 1"), DATABASE_TIMEOUT)
    except UNAVAILABLE_ERRORS:
        return [f"PostgreSQL did not answer within {DATABASE_TIMEOUT:g} s"]
    return []
