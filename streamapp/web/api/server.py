"""Serving the API with uvicorn, and stopping it without dropping what was accepted.

On SIGTERM (or Ctrl-C) the API first answers `/readyz` with 503 for `API_DRAIN_SECONDS` while
it goes on serving, so a load balancer stops sending it requests; then uvicorn stops taking
connections and lets the requests in flight finish (at most `API_SHUTDOWN_TIMEOUT`); then the
lifespan flushes the outbox's queue. An event not sent by then stays in the outbox, and the
relay of any API process (this one, restarted) sends it. A second signal skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from types import FrameType

import uvicorn
from fastapi import FastAPI
from typing_extensions import override

from streamapp.config import Settings
from streamapp.web.api.app import create_api

logger = logging.getLogger(__name__)

# The open-file limit raise_open_file_limit asks for when the hard limit is unlimited.
_MOST_OPEN_FILES = 65_536


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, api: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self._api = api
        self._drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None

    @override
    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    @override
    async def shutdown(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        # Event streams never end by themselves: end them, or the wait for open connections
        # would last the whole shutdown timeout.
        dashboard = getattr(self._api.state, "dashboard", None)
        if dashboard is not None:
            dashboard.close_pages()
        await super().shutdown(sockets)  # type: ignore[arg-type]

    @override
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        stop = super().handle_exit
        if self._api.state.draining or not self._drain_seconds or self._loop is None:
            stop(sig, frame)
            return
        self._api.state.draining = True
        logger.info(
            "stopping: /readyz answers 503 for %gs, then requests in flight finish",
            self._drain_seconds,
        )
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self._drain_seconds, stop, sig, frame
        )


def raise_open_file_limit() -> int:
    """Lift the soft limit of open files to the hard one and return it: each connection is a
    file, and a soft limit of 1,024 (a common default) would refuse a burst of clients at
    accept() instead of letting the API answer them, 503 included."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _MOST_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
            return soft
        return wanted
    return soft


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API until a signal stops it (see the module's doc)."""
    raise_open_file_limit()
    api = create_api(settings)
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the logging configured by the command
        proxy_headers=True,
        timeout_graceful_shutdown=settings.api_shutdown_timeout,
    )
    DrainingServer(config, api, settings.api_drain_seconds).run()
