"""What the benchmarks run on: real PostgreSQL and Apache Kafka, as the test suite starts them,
the streamapp processes, the baseline servers, and wrk.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from streamapp.dev.processes import LoggedProcess, free_port
from tests.harness.kafka import ApacheKafka
from tests.harness.processes import Api, Worker, child_env, http_json

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# The timings the test suite uses, so a worker joins the group in seconds.
STREAMAPP_SETTINGS = {
    "LOG_LEVEL": "WARNING",
    "TOPIC_PARTITIONS": "8",
    "WORKER_REBALANCE_TIMEOUT": "10",
    "WORKER_SESSION_TIMEOUT": "10",
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "WORKER_WEB_HOST": "127.0.0.1",
    "REDELIVER_AFTER": "0",
    "DB_POOL_MAX_SIZE": "20",
}


@dataclass
class Services:
    """PostgreSQL and Kafka for one benchmark run, and the database the run uses."""

    postgres: EmbeddedPostgres
    kafka: ApacheKafka
    database_url: str

    def env(self, **overrides: str) -> dict[str, str]:
        """Return the environment of a streamapp child process on these services."""
        base = {
            **STREAMAPP_SETTINGS,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "WORKER_DATA_DIR": tempfile.mkdtemp(prefix="streamapp-bench-worker-"),
        }
        return child_env(**{**base, **overrides})

    async def fresh_database(self) -> str:
        """Create and migrate another database on the same server; return its URL."""
        name = f"bench_{free_port()}"
        url = self.postgres.create_database(name)
        await asyncio.to_thread(migrate.upgrade, url)
        return url


@contextmanager
def services() -> Iterator[Services]:
    """Start PostgreSQL and a single-node Apache Kafka; stop and remove both afterwards."""
    postgres = EmbeddedPostgres()
    kafka = ApacheKafka()
    postgres.start()
    try:
        kafka.start()
        try:
            url = postgres.create_database("bench")
            migrate.upgrade(url)
            yield Services(postgres, kafka, url)
        finally:
            kafka.remove()
    finally:
        postgres.close()


@contextmanager
def running(*processes: LoggedProcess) -> Iterator[None]:
    """Stop the given processes on the way out, whatever happens."""
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def streamapp_api(env: dict[str, str]) -> Api:
    api = Api(env).start()
    api.wait_ready()
    return api


def streamapp_worker(env: dict[str, str]) -> Worker:
    worker = Worker(env).start()
    worker.wait_ready()
    return worker


def wait_until_assigned(worker: Worker) -> None:
    """Wait until the worker holds partitions of new_applications (it joined the group)."""
    from tests.harness.processes import wait_for

    wait_for(lambda: bool(worker.assigned_partitions("new_applications")), timeout=90)


class BaselineServer(LoggedProcess):
    """One of the minimal FastAPI apps in bench/baselines.py, under uvicorn like the API."""

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
        self.launch(command, env={**self.env, "PYTHONPATH": str(ROOT)})
        self.wait_until(lambda: _answers(f"{self.url}/healthz"), 30)
        return self


def _answers(url: str) -> bool:
    try:
        http_json(url, timeout=1)
        return True
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(
    url: str, *, seconds: float, script: str, connections: int = 32, threads: int = 2
) -> WrkResult:
    """Load `url` with wrk and a Lua script from bench/; return throughput and latency."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed: apt-get install wrk")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    command += ["--latency", "-s", str(BENCH / script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors += (
        sum(
            int(n)
            for n in re.findall(
                r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
            )[0]
        )
        if "Socket errors" in output
        else 0
    )
    return WrkResult(rps, _percentile(output, "50%"), _percentile(output, "99%"), errors)


def _percentile(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def machine() -> dict[str, object]:
    """Describe where the figures were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }
