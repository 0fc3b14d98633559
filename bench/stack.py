"""What the benchmarks run on: real PostgreSQL and Apache Kafka (started as the test suite
starts them), streamapp processes, the baseline servers, and wrk.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from streamapp.dev.processes import LoggedProcess, free_port
from tools.stack.kafka import ApacheKafka
from tools.stack.processes import Api, Worker, child_env, http_json, wait_for

logger = logging.getLogger(__name__)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TOPIC = "new_applications"
# Production defaults, but for the group timings the test suite uses (a worker joins in
# seconds) and no redelivery sweep (nothing is lost in a benchmark; it would only add load).
STREAMAPP_SETTINGS = {
    "LOG_LEVEL": "WARNING",
    "TOPIC_PARTITIONS": "8",
    "WORKER_REBALANCE_TIMEOUT": "10",
    "WORKER_SESSION_TIMEOUT": "10",
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "WORKER_WEB_HOST": "127.0.0.1",
    "REDELIVER_AFTER": "0",
}


@dataclass
class Stack:
    """The servers of one benchmark run."""

    postgres: EmbeddedPostgres
    kafka: ApacheKafka

    async def database(self, name: str) -> str:
        """Create and migrate a database; return its URL."""
        url = self.postgres.create_database(name)
        await asyncio.to_thread(migrate.upgrade, url)
        return url

    def env(self, database_url: str, **overrides: str) -> dict[str, str]:
        """Return the environment of a child process on these servers."""
        settings = {
            **STREAMAPP_SETTINGS,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "WORKER_DATA_DIR": tempfile.mkdtemp(prefix="streamapp-bench-"),
            "PYTHONPATH": str(ROOT),
        }
        return child_env(**{**settings, **overrides})

    @contextmanager
    def fresh_kafka(self) -> Iterator[None]:
        """Replace the broker with an empty one for the duration (topics, groups: none)."""
        self.kafka.remove()
        self.kafka = ApacheKafka()
        self.kafka.start()
        yield


@contextmanager
def stack() -> Iterator[Stack]:
    """Start PostgreSQL and a single-node Apache Kafka; stop and remove both afterwards."""
    postgres = EmbeddedPostgres()
    postgres.start()
    servers = Stack(postgres, ApacheKafka())
    try:
        servers.kafka.start()
        yield servers
    finally:
        servers.kafka.remove()
        postgres.close()


@contextmanager
def running(*processes: LoggedProcess) -> Iterator[None]:
    """Stop the given processes on the way out, whatever happens."""
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def cpu_seconds(*processes: LoggedProcess) -> float:
    """The CPU time (user and system) the processes have used so far."""
    total = 0.0
    for process in processes:
        assert process.process is not None
        times = psutil.Process(process.process.pid).cpu_times()
        total += times.user + times.system
    return total


def start_api(env: dict[str, str], cwd: Path | None = None, processes: int = 1) -> Api:
    api = Api(env, cwd=cwd, processes=processes).start()
    api.wait_ready()
    return api


def start_worker(env: dict[str, str], *, wait: bool = True, cwd: Path | None = None) -> Worker:
    worker = Worker(env, cwd=cwd).start()
    if wait:
        worker.wait_ready()
    return worker


def wait_assigned(workers: list[Worker]) -> None:
    """Wait until the workers hold every partition of the topic between them."""

    def assigned() -> bool:
        try:
            owned = [w.assigned_partitions(TOPIC) for w in workers]
        except OSError:
            return False
        return all(owned) and sum(len(p) for p in owned) == int(
            STREAMAPP_SETTINGS["TOPIC_PARTITIONS"]
        )

    wait_for(assigned, timeout=120, message="workers never shared the partitions")


class BaselineServer(LoggedProcess):
    """One of the minimal FastAPI apps of bench/baselines.py, under uvicorn like the API."""

    def __init__(self, app: str, env: dict[str, str]) -> None:
        self.port = free_port()
        log = Path(tempfile.mkstemp(prefix=f"bench-{app}-", suffix=".log")[1])
        super().__init__(f"baseline {app}", log)
        self.app = app
        self.env = env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BaselineServer:
        command = [sys.executable, "-m", "uvicorn", f"bench.baselines:{self.app}"]
        command += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        self.launch(command, env=self.env)
        self.wait_until(lambda: _answers(f"{self.url}/healthz"), 30)
        return self


class MinimalProcessor(LoggedProcess):
    """One member of the minimal processor's group (bench/minimal.py), as a child process."""

    def __init__(self, env: dict[str, str], group: str) -> None:
        log = Path(tempfile.mkstemp(prefix="bench-minimal-", suffix=".log")[1])
        super().__init__("minimal processor", log)
        self.env = env
        self.group = group

    def start(self) -> MinimalProcessor:
        self.launch([sys.executable, "-m", "bench.minimal", "--group", self.group], env=self.env)
        return self


def _answers(url: str) -> bool:
    try:
        http_json(url, timeout=1)
        return True
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Load:
    """What wrk measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk(url: str, *, seconds: float, script: str | None = None, connections: int = 32) -> Load:
    """Load `url` with wrk (two threads), optionally with a Lua script of bench/."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed: apt-get install wrk")
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script:
        command += ["-s", str(BENCH / script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{output}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += socket_errors(output)
    return Load(
        float(rate.group(1)), percentile_ms(output, "50%"), percentile_ms(output, "99%"), errors
    )


def socket_errors(output: str) -> int:
    """What wrk counts as socket errors: refused or reset connections, failed reads and
    writes, and answers later than its timeout."""
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return sum(int(n) for n in found.groups()) if found else 0


def percentile_ms(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


async def fetch_value(database_url: str, sql: str, *arguments: Any) -> Any:
    """The first column of the first row of one query, on a connection of its own."""
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval(sql, *arguments)
    finally:
        await connection.close()


async def vacuum(database_url: str, attempts: int = 20) -> None:
    """VACUUM ANALYZE, as autovacuum would have by now on a table this size, until every page
    of `applications` is marked all-visible. A VACUUM right after the rows were written may
    mark none (seen on a 100,000-row table: every index-only scan then visited the heap, 50,000
    heap fetches for a page 50,000 rows down); one a moment later marks them all."""
    connection = await asyncpg.connect(database_url)
    try:
        for _ in range(attempts):
            await connection.execute("VACUUM ANALYZE")
            pages, visible = await connection.fetchrow(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'applications'"
            )
            if visible >= pages:
                return
            await asyncio.sleep(0.5)
        logger.warning("applications: %d of %d pages all-visible after VACUUM", visible, pages)
    finally:
        await connection.close()


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
