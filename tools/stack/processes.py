"""streamapp processes (`streamapp api`, `streamapp worker`) run the way an operator runs them."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psutil

from streamapp.config import Settings
from streamapp.dev.processes import LoggedProcess
from streamapp.stream.topics import NEW_APPLICATIONS
from tools.stack.hosts import Host

STREAMAPP = [sys.executable, "-m", "streamapp"]


def http_json(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    """GET url and return the decoded JSON body (raises on any error)."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _answers(url: str, headers: dict[str, str]) -> bool:
    try:
        http_json(url, timeout=1.0, headers=headers)
        return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


class StreamappProcess(LoggedProcess):
    """One `streamapp` child process with its log in a temporary file: on this machine's
    loopback, or on the `on` host (tools.stack.hosts)."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        on: Host | None = None,
        cwd: Path | None = None,
    ) -> None:
        log_path = Path(tempfile.mkstemp(prefix=f"streamapp-{name}-", suffix=".log")[1])
        super().__init__(name, log_path)
        self.args = args
        self.env = env
        self.on = on
        self.cwd = cwd  # another checkout's, to run its code (`python -m` reads the cwd first)
        self.address = on.address if on else "127.0.0.1"

    def start(self) -> StreamappProcess:
        with self.on.inside() if self.on else nullcontext():
            self.launch([*STREAMAPP, *self.args], env=self.env, cwd=self.cwd)
        return self

    @property
    def headers(self) -> dict[str, str]:
        """What a caller of this process's web port sends: the workers' token, if set."""
        token = self.env.get("WORKER_WEB_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def wait_for_http(self, url: str, timeout: float = 90.0) -> None:
        self.wait_until(lambda: _answers(url, self.headers), timeout)


class Worker(StreamappProcess):
    """A `streamapp worker` with Faust's web views on its own port. On a host of its own,
    the views listen on the host's address, which the other workers are told."""

    def __init__(
        self,
        env: dict[str, str],
        web_port: int | None = None,
        on: Host | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.web_port = web_port or (6066 if on else free_ports(1))
        if on:
            env = {**env, "WORKER_WEB_HOST": on.address, "WORKER_WEB_BIND": on.address}
        name = f"worker-{on.name if on else self.web_port}"
        super().__init__(name, ["worker", "--web-port", str(self.web_port)], env, on, cwd)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.web_port}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_for_http(f"{self.url}/stats/", timeout)

    def assigned_partitions(self, topic: str) -> set[int]:
        summary = http_json(f"{self.url}/stats/", headers=self.headers)
        return {item["partition"] for item in summary["assignment"] if item["topic"] == topic}

    def wait_holding_every_partition(self, timeout: float = 90.0) -> None:
        """Wait until this worker, alone in its group, holds every partition of the topic."""
        partitions = int(
            self.env.get("TOPIC_PARTITIONS", Settings.model_fields["topic_partitions"].default)
        )
        wait_for(
            lambda: len(self.assigned_partitions(NEW_APPLICATIONS)) == partitions,
            timeout=timeout,
            message=f"{self.name} does not hold every partition",
        )


class Api(StreamappProcess):
    """A `streamapp api` served by uvicorn."""

    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        on: Host | None = None,
        cwd: Path | None = None,
        processes: int = 1,
    ) -> None:
        self.port = port or (8000 if on else free_ports(1))
        address = on.address if on else "127.0.0.1"
        args = ["api", "--host", address, "--port", str(self.port)]
        if processes > 1:
            args += ["--workers", str(processes)]
        super().__init__(f"api-{on.name if on else self.port}", args, env, on, cwd)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_for_http(f"{self.url}/healthz", timeout)


def split_between(workers: list[Worker]) -> bool:
    """True once the workers hold every partition of the topic between them, each some."""
    partitions = int(
        workers[0].env.get("TOPIC_PARTITIONS", Settings.model_fields["topic_partitions"].default)
    )
    try:
        owned = [worker.assigned_partitions(NEW_APPLICATIONS) for worker in workers]
    except OSError:
        return False
    held = sorted(p for partitions_held in owned for p in partitions_held)
    return all(owned) and held == list(range(partitions))


# Timings that keep a worker's first group join and the detection of a lost one short, and
# the outbox relay quick: for the stacks the tests and `make cluster` start.
QUICK_SETTINGS = {
    "TOPIC_PARTITIONS": "6",
    "WORKER_REBALANCE_TIMEOUT": "10",
    "WORKER_SESSION_TIMEOUT": "6",
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "OUTBOX_RELAY_INTERVAL": "0.5",
    "OUTBOX_RELAY_DELAY": "1",
    "OUTBOX_MAX_BACKOFF": "2",
    "API_DRAIN_SECONDS": "0",  # stop at once; the graceful-stop test sets it
    "LOG_LEVEL": "INFO",
}


@contextmanager
def api_and_worker(env: dict[str, str]) -> Iterator[tuple[Api, Worker]]:
    """An API and a worker on `env`, both ready, the worker holding every partition."""
    api, worker = Api(env), Worker(env)
    api.start()
    worker.start()
    try:
        api.wait_ready()
        worker.wait_ready()
        worker.wait_holding_every_partition()
        yield api, worker
    finally:
        api.stop()
        worker.stop()


def alive(process: psutil.Process) -> bool:
    """Running and not a zombie; a process gone between two looks at it is not alive."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def free_ports(count: int) -> int:
    """Return a port p such that p .. p + count - 1 are free right now.

    They are picked below the kernel's ephemeral range, so the source port of an outgoing
    connection cannot take one between this check and the server binding it.
    """
    low = 20_000
    high = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        base = random.randrange(low, high - count)
        if all(_bindable(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} adjacent free ports below {high}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(condition: Any, timeout: float, interval: float = 0.2, message: str = "") -> Any:
    """Poll a callable until it returns something truthy; return it or fail after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(message or f"condition not met in {timeout}s (last: {last!r})")


async def eventually(
    condition: Any, timeout: float, interval: float = 0.2, message: str = ""
) -> Any:
    """wait_for for async tests: poll without blocking the event loop the test shares with
    the API (a sync condition, such as an HTTP call to a worker, runs in a thread)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if inspect.iscoroutinefunction(condition):
            last = await condition()
        else:
            last = await asyncio.to_thread(condition)
            assert not inspect.isawaitable(last), "pass an async condition itself, not a lambda"
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(message or f"condition not met in {timeout}s (last: {last!r})")


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env
