"""The workers' web port answers only those who present WORKER_WEB_TOKEN (when it is set).

The cluster-wide views make workers call each other, so once that port is bound beyond
loopback (which the settings refuse without a token) a stranger on the network must not read
the tables or the metrics. Callers send `Authorization: Bearer <token>`; Faust's table_route
forwards the header with the request, and the scatter-gather sends it itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The probes (streamapp.web.worker.probes) answer without the token: an orchestrator's
# probes carry no secret, and they tell nothing about the data.
HEALTH_PATH = "/healthz/"
READY_PATH = "/readyz/"
OPEN_PATHS = frozenset({HEALTH_PATH, READY_PATH})


def bearer(token: str) -> dict[str, str]:
    """The header that authenticates a call to a worker."""
    return {"Authorization": f"Bearer {token}"}


def require_token(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that answers 401 to any request without the token, but for the
    probes (OPEN_PATHS)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response(
                {"error": "unauthorized", "message": "send Authorization: Bearer WORKER_WEB_TOKEN"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="streamapp worker"'},
            )
        return await handler(request)

    return middleware
