"""Load shedding: what the API cannot serve in time, it refuses at once (503 with
Retry-After) instead of queueing it until every answer is late.

Two bounds, both settings: at most API_MAX_CONCURRENCY requests are served at once, and a
request waits at most API_QUEUE_TIMEOUT for its turn, newest first (ConcurrencyLimit); a
statement waits at most DB_POOL_TIMEOUT for a pooled connection (streamapp.db). Under a
flood the requests admitted wait at most API_QUEUE_TIMEOUT for their turn, and the rest
learn at once to come back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from streamapp.errors import API_OVERLOADED
from streamapp.metrics import REQUESTS_SHED
from streamapp.web.api.errors import error_response
from streamapp.web.api.middleware import OPERATIONS_PATHS

logger = logging.getLogger(__name__)

# Never held back: an orchestrator must see a busy API as alive and ready, Prometheus must
# scrape it, and a dashboard's event stream lasts as long as the page is open.
UNLIMITED_PATHS = OPERATIONS_PATHS
# The least time between two warnings about shedding (a flood would log every request).
_WARN_EVERY = 10.0


class Turns:
    """`limit` turns to serve a request. A request that finds none waits, and a turn given
    back goes to the newest waiting request: under overload the oldest are the ones whose
    clients are likeliest gone, and a request that arrives as the load ends is served at
    once instead of behind everything that queued before it."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: collections.deque[asyncio.Future[bool]] = collections.deque()

    def take(self) -> bool:
        """Take a free turn if there is one."""
        if self._free:
            self._free -= 1
            return True
        return False

    async def wait(self, within: float) -> bool:
        """Wait up to `within` seconds for a turn given back; return whether one came.

        A timer, not asyncio.timeout: under a flood nearly every request waits here, and the
        timeout's set-up and cancelling took a seventh of the samples in a burst's profile."""
        loop = asyncio.get_running_loop()
        handed: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(handed)
        timer = loop.call_later(within, self._expire, handed)
        try:
            return await handed
        except BaseException:  # cancelled: the request's deadline, or the shutdown
            if handed.done() and not handed.cancelled() and handed.result():
                self.give_back()  # handed a turn just as it was cancelled: pass it on
            raise
        finally:
            timer.cancel()

    def give_back(self) -> None:
        while self._waiting:
            handed = self._waiting.pop()  # the newest
            if not handed.done():
                handed.set_result(True)  # the turn passes on directly
                return
        self._free += 1

    def _expire(self, handed: asyncio.Future[bool]) -> None:
        if not handed.done():
            handed.set_result(False)
        # The oldest lead the queue and expire first: drop them, or a long flood that keeps
        # the newest served would keep every expired wait.
        while self._waiting and self._waiting[0].done():
            self._waiting.popleft()


class ConcurrencyLimit:
    """Serve at most `limit` requests at once; the others wait for a turn (newest first, see
    Turns) for at most `queue_timeout` seconds, then get 503 `service_unavailable` with
    `Retry-After: 1`. A request shed this way has done nothing: retrying it is safe."""

    def __init__(self, app: ASGIApp, limit: int, queue_timeout: float) -> None:
        self.app = app
        self.queue_timeout = queue_timeout
        self._turns = Turns(limit)
        self._warned = -_WARN_EVERY
        self._shed = REQUESTS_SHED.labels("queue")
        # Made once: under a flood, most answers are this one.
        self._refusal = error_response(503, "service_unavailable", API_OVERLOADED)
        self._refusal.headers["Retry-After"] = "1"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if not self._turns.take() and not await self._turns.wait(self.queue_timeout):
            self._refuse()
            await self._refusal(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._turns.give_back()

    def _refuse(self) -> None:
        self._shed.inc()
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            logger.warning(
                "at capacity: requests that wait over %gs for a turn get 503 (counted in "
                "streamapp_requests_shed_total)",
                self.queue_timeout,
            )
