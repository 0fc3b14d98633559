"""A broker and a database of a test's own, and the processes it starts on them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import httpx

from streamapp import migrate
from tests.harness.postgres import PostgresServer
from tests.harness.settings import TEST_SETTINGS
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import Api, Worker, child_env


@dataclass
class Isolated:
    """A broker and a database for one test, and the processes it started on them."""

    env: dict[str, str]
    pg: asyncpg.Pool
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self) -> Worker:
        worker = Worker(self.env).start()
        self.workers.append(worker)
        return worker

    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.process is not None and w.process.poll() is None]

    @asynccontextmanager
    async def api_client(self) -> AsyncIterator[httpx.AsyncClient]:
        """An API process on these services, and a client of it."""
        api = Api(self.env).start()
        try:
            await asyncio.to_thread(api.wait_ready)
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                yield client
        finally:
            api.stop()


@asynccontextmanager
async def isolated_services(
    postgres: PostgresServer, kafka: ApacheKafka, **settings: str
) -> AsyncIterator[Isolated]:
    """A new migrated database on `postgres`, `kafka`, and the test's settings over both."""
    url = await postgres.create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    env = {
        **TEST_SETTINGS,
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        **settings,
    }
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    setup = Isolated(child_env(**env), pool)
    try:
        yield setup
    finally:
        for worker in setup.workers:
            worker.stop(signal.SIGKILL)
        await pool.close()
        await postgres.drop_database(url)
