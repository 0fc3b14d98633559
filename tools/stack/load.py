"""Load for the API: applications filed at a steady rate."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
import httpx


async def steady_posts(
    client: httpx.AsyncClient, user_names: list[str], count: int, rate: float
) -> list[int]:
    """File `count` applications at `rate` per second, whatever the answers' latency.

    Every answer must be a 201; returns the ids.
    """
    ids: list[int] = []

    async def post(index: int) -> None:
        body = {"user_name": user_names[index % len(user_names)], "description": f"#{index}"}
        response = await client.post("/applications", json=body)
        assert response.status_code == 201, response.text
        ids.append(int(response.json()["id"]))

    started = time.monotonic()
    tasks = []
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(index)))
    await asyncio.gather(*tasks)
    return ids


NO_ANSWER = 0  # the status of a request that got no answer (refused, reset, timed out)


@dataclass(frozen=True)
class Answer:
    """One POST: when it was sent (seconds into the load), what came back, how fast."""

    sent_at: float
    status: int
    seconds: float
    application_id: int | None
    error: str | None = None  # why there was no answer


@dataclass
class SteadyLoad:
    """POSTs to the API at `base_url`, `rate` per second until the block ends, whatever
    happens to the answers.

    Unlike `steady_posts` nothing is asserted while it runs: every answer (or its absence,
    after `timeout`) is kept, for the test to judge. Every request in flight has a
    connection of its own, opened for it, as independent clients would: a server that stops
    answering does not hold the next requests back in the client, and no request races the
    server closing an idle kept-alive connection. The block's end waits for the requests
    still in flight.
    """

    base_url: str
    user_names: list[str]
    rate: float = 100.0
    timeout: float = 60.0
    answers: list[Answer] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _session: aiohttp.ClientSession | None = None
    _started: float = 0.0

    async def __aenter__(self) -> SteadyLoad:
        self._session = aiohttp.ClientSession(
            self.base_url,
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="steady-load")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._task is not None
        assert self._session is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._session.close()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @property
    def accepted(self) -> list[int]:
        """The ids of the applications answered 201."""
        return [a.application_id for a in self.answers if a.application_id is not None]

    def statuses(self) -> Counter[int]:
        return Counter(answer.status for answer in self.answers)

    def unanswered(self) -> list[str]:
        """Why each request without an answer got none, with when it was sent."""
        return [f"{a.sent_at:.1f}s: {a.error}" for a in self.answers if a.status == NO_ANSWER]

    def slowest(self, status: int | None = None) -> float:
        """The longest answer (of `status` only, if given)."""
        times = [a.seconds for a in self.answers if status is None or a.status == status]
        return max(times, default=0.0)

    async def _run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        index = 0
        try:
            while True:
                delay = self._started + index / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._post(index))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                index += 1
        finally:
            # Stopped: the requests already sent still get their answers.
            await asyncio.shield(asyncio.gather(*in_flight, return_exceptions=True))

    async def _post(self, index: int) -> None:
        user_name = self.user_names[index % len(self.user_names)]
        body = {"user_name": user_name, "description": f"#{index}"}
        assert self._session is not None
        sent = time.monotonic()
        status, application_id, error = NO_ANSWER, None, None
        try:
            async with self._session.post("/applications", json=body) as response:
                status = response.status
                if status == 201:
                    application_id = int((await response.json())["id"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = repr(exc)
        seconds = time.monotonic() - sent
        self.answers.append(Answer(sent - self._started, status, seconds, application_id, error))
