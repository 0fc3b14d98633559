"""/metrics: this API process's Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from streamapp.metrics import exposition

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Expose Prometheus metrics."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)
