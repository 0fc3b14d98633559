"""Smoke tests of `streamapp dev` (what `make run` starts): up, working, and gone afterwards."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from streamapp.dev.processes import port_is_open
from tools.stack.processes import alive, free_ports, wait_for

APPLICATIONS = 20
logger = logging.getLogger(__name__)


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    api_port: int
    worker_port: int
    log_path: Path
    children: list[psutil.Process]
    left_running: list[psutil.Process] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def leftovers(self) -> list[psutil.Process]:
        return [c for c in self.children if alive(c)]


@contextmanager
def dev_stack(tmp_path: Path) -> Iterator[DevStack]:
    """Run `streamapp dev` with two workers on free ports, as a newcomer would (no settings)."""
    api_port = free_ports(3)
    worker_port = api_port + 1
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    log_path = tmp_path / "dev.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamapp",
                "dev",
                "--api-port",
                str(api_port),
                "--worker-port",
                str(worker_port),
                "--workers",
                "2",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        children: list[psutil.Process] = []
        try:
            wait_for(
                lambda: b"streamapp is up" in log_path.read_bytes() or process.poll(),
                timeout=120,
                message="dev stack did not come up",
            )
            assert process.poll() is None, log_path.read_text()
            logger.info("dev stack ready after %.1fs", time.monotonic() - started)
            children = psutil.Process(process.pid).children(recursive=True)
            stack = DevStack(process, api_port, worker_port, log_path, children)
            yield stack
            # What the test's own stop left running, seen before the clean-up below kills it.
            stack.left_running = stack.leftovers()
        finally:
            _stop_leaving_nothing(process, children)


def _stop_leaving_nothing(process: subprocess.Popen[bytes], children: list[Any]) -> None:
    """Stop the stack as Ctrl-C would; if that fails (a failed test may leave it in any state),
    kill it and every process it started, so no broker or database outlives the test."""
    descendants = list(children)
    with contextlib.suppress(psutil.NoSuchProcess):
        descendants += psutil.Process(process.pid).children(recursive=True)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_dev_stack_runs_the_whole_system_and_stops_cleanly(tmp_path: Path) -> None:
    with dev_stack(tmp_path) as stack:
        ids = []
        for index in range(APPLICATIONS):
            response = httpx.post(
                f"{stack.api}/applications",
                json={"user_name": f"smoke-{index % 3}", "description": f"#{index}"},
                timeout=10,
            )
            assert response.status_code == 201
            ids.append(response.json()["id"])

        def all_processed() -> bool:
            listed = httpx.get(f"{stack.api}/applications", params={"size": 100}, timeout=10)
            applications = listed.json()["applications"]
            return {a["id"] for a in applications if a["status"] == "processed"} >= set(ids)

        wait_for(all_processed, timeout=60, message="applications not processed")
        worker = f"http://127.0.0.1:{stack.worker_port}"
        assert httpx.get(f"http://127.0.0.1:{stack.worker_port + 1}/stats/").status_code == 200

        def counted() -> int:
            return sum(
                httpx.get(f"{worker}/stats/users/smoke-{n}/", timeout=10).json()["processed"]
                for n in range(3)
            )

        # The tables take the counts at most every half second after PostgreSQL.
        wait_for(lambda: counted() == APPLICATIONS, timeout=10, message="counts not in tables")
        # Either worker answers the cluster's minutes; the dashboard's stream has every part.
        for port in (stack.worker_port, stack.worker_port + 1):
            wait_for(
                lambda p=port: minutes_total(f"http://127.0.0.1:{p}") == APPLICATIONS,
                timeout=30,
                message=f"worker on {port}: /stats/minutes/ is not {APPLICATIONS}",
            )
        snapshot = first_snapshot(stack.api)
        assert sum(snapshot["minutes"].values()) == APPLICATIONS
        assert snapshot["lag"] is not None
        assert snapshot["outbox"] == {"backlog": 0, "oldest_seconds": 0.0}

        stack.process.send_signal(signal.SIGINT)  # Ctrl-C
        assert stack.process.wait(60) == 0

    assert len(stack.children) >= 5  # PostgreSQL, broker, api, two workers
    assert stack.left_running == []
    for port in (stack.api_port, stack.worker_port, stack.worker_port + 1):
        assert not port_is_open("127.0.0.1", port)


def test_dev_stack_stops_everything_when_a_process_dies(tmp_path: Path) -> None:
    with dev_stack(tmp_path) as stack:
        worker = next(
            c
            for c in stack.children
            if "worker" in c.cmdline() and str(stack.worker_port) in c.cmdline()
        )
        worker.kill()

        assert stack.process.wait(60) == 1

    assert "worker-1 exited with code -9; stopping everything" in stack.log_path.read_text()
    assert stack.left_running == []


def minutes_total(worker: str) -> int | None:
    response = httpx.get(f"{worker}/stats/minutes/", timeout=10)
    if response.status_code != 200:
        return None
    return sum(minute["processed"] for minute in response.json()["minutes"])


def first_snapshot(api: str) -> Any:
    """The first `snapshot` event of the dashboard's stream."""
    with httpx.stream("GET", f"{api}/events", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                return json.loads(line.removeprefix("data: "))
    raise AssertionError("the event stream ended without a snapshot")
