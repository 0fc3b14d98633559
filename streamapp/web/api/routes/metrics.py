"""/metrics: this API process's Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Response

from streamapp.db import UNAVAILABLE_ERRORS
from streamapp.metrics import exposition
from streamapp.web.api.deps import OutboxDep

# A scrape while PostgreSQL is away still answers, with the backlog as last measured.
BACKLOG_TIMEOUT_SECONDS = 1.0

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(outbox: OutboxDep) -> Response:
    """Expose Prometheus metrics (the outbox backlog is measured for each scrape)."""
    with contextlib.suppress(TimeoutError, *UNAVAILABLE_ERRORS):
        await asyncio.wait_for(outbox.measure_backlog(), BACKLOG_TIMEOUT_SECONDS)
    body, content_type = exposition()
    return Response(body, media_type=content_type)
