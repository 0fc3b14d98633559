"""/dashboard, a live page of the stream, and /events, the Server-Sent Events it reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, StreamingResponse

from streamapp.services.dashboard import DashboardFeed
from streamapp.web.api.deps import DashboardDep

# An open stream with nothing to say sends a comment this often, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0

router = APIRouter(tags=["dashboard"])
_PAGE = files("streamapp.web.api").joinpath("static/dashboard.html").read_text("utf-8")


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The live dashboard: plain HTML and a little JS, nothing loaded from elsewhere."""
    return HTMLResponse(_PAGE, headers={"Cache-Control": "no-cache"})


@router.get("/events", include_in_schema=False)
async def events(feed: DashboardDep) -> StreamingResponse:
    """The dashboard's events: `snapshot` (once a second), `created` and `processed`."""
    return StreamingResponse(
        _stream(feed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(feed: DashboardFeed) -> AsyncIterator[bytes]:
    with feed.page() as queue:
        yield b"retry: 2000\n\n"
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if message is None:
                return
            yield message.encode()
