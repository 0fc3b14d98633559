"""/healthz (the process is up) and /readyz (its database answers)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.errors import ApiStopping, DatabaseUnavailable, Overloaded
from streamapp.models.schemas import Health
from streamapp.web.api.deps import DatabaseDep
from streamapp.web.api.errors import ERROR_BODY

router = APIRouter(tags=["health"])

READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Answer while the process runs."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: ERROR_BODY})
async def readyz(request: Request, db: DatabaseDep) -> Health:
    """Answer 200 when PostgreSQL answers, else 503. Kafka is reported, not required:
    applications are accepted into the outbox while the broker is down. A stopping API
    answers 503 while it finishes its work, so that no new work is sent to it."""
    if request.app.state.draining:
        raise ApiStopping()
    database = "ok"
    try:
        await asyncio.wait_for(db.fetch_val("SELECT 1"), READY_TIMEOUT_SECONDS)
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable() from exc
    except Overloaded:
        # Every pooled connection busy: this process sheds load, it is not broken. Taking
        # it out of rotation would only push its share onto the others.
        database = "busy"
    kafka = "connected" if request.app.state.producer.ready else "connecting"
    return Health(status="ok", database=database, kafka=kafka)
