"""How a worker calls the other workers: with a deadline, and a 503 when one is silent.

The per-user views forward a request to the worker that owns the key (Faust's table_route),
and /stats/minutes/ asks every worker for its part. On a real network a worker cut off does
not refuse: the call hangs. Faust's client would wait five minutes (aiohttp's default), and
the caller with it; here every call to a peer ends after PEER_TIMEOUT, and the view answers
503 with Retry-After, naming the worker that did not answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

# Seconds a worker waits for another worker's answer.
PEER_TIMEOUT = 5.0
SILENT_PEER = "the worker that holds this data did not answer within {seconds:g} s"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def http_client() -> aiohttp.ClientSession:
    """The client session Faust's app uses to call other workers (conf.HttpClient)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT))


@web.middleware
async def silent_peers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 503 when the worker a request was forwarded to does not answer in time."""
    try:
        return await handler(request)
    except (TimeoutError, aiohttp.ClientError) as exc:
        logger.warning(
            "%s %s: another worker did not answer (%r)", request.method, request.path, exc
        )
        return web.json_response(
            {"error": "unavailable", "detail": SILENT_PEER.format(seconds=PEER_TIMEOUT)},
            status=503,
            headers={"Retry-After": "1"},
        )
