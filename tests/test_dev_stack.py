"""Smoke test of `streamapp dev` (what `make run` starts): up, working, and gone on Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from streamapp.embedded.process import free_port, port_is_open
from tests.harness.processes import wait_for

APPLICATIONS = 20


def _two_free_ports(exclude: int) -> int | None:
    """Return a port p such that p and p + 1 are free (the workers' ports), else None."""
    port = free_port()
    if exclude in (port, port + 1) or port_is_open("127.0.0.1", port + 1):
        return None
    return port


def test_dev_stack_runs_the_whole_system_and_stops_cleanly(tmp_path: Path) -> None:
    api_port = free_port()
    worker_port = wait_for(lambda: _two_free_ports(exclude=api_port), timeout=10)
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    dev = subprocess.Popen(
        [sys.executable, "-m", "streamapp", "dev", "--api-port", str(api_port),
         "--worker-port", str(worker_port), "--workers", "2"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: b"streamapp is up" in (tmp_path / "dev.log").read_bytes() or dev.poll(),
                 timeout=120, message="dev stack did not come up")  # fmt: skip
        assert dev.poll() is None, (tmp_path / "dev.log").read_text()
        ready_after = time.monotonic() - started
        children = psutil.Process(dev.pid).children(recursive=True)
        api = f"http://127.0.0.1:{api_port}"

        ids = []
        for index in range(APPLICATIONS):
            response = httpx.post(
                f"{api}/applications",
                json={"user_name": f"smoke-{index % 3}", "description": f"#{index}"},
                timeout=10,
            )
            assert response.status_code == 201
            ids.append(response.json()["id"])

        def all_processed() -> bool:
            listed = httpx.get(f"{api}/applications", params={"size": 100}, timeout=10).json()
            return {a["id"] for a in listed["applications"] if a["status"] == "processed"} >= set(
                ids
            )

        wait_for(all_processed, timeout=60, message="applications not processed")
        for port in (worker_port, worker_port + 1):
            assert httpx.get(f"http://127.0.0.1:{port}/stats/", timeout=10).status_code == 200
        total = sum(
            httpx.get(f"http://127.0.0.1:{worker_port}/stats/users/smoke-{n}/", timeout=10).json()[
                "processed"
            ]
            for n in range(3)
        )
        assert total == APPLICATIONS

        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0
    finally:
        if dev.poll() is None:
            dev.kill()
        log.close()
    logging.getLogger(__name__).info("dev stack ready after %.1fs", ready_after)
    assert len(children) >= 4  # broker, api, two workers (plus PostgreSQL)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    for port in (api_port, worker_port, worker_port + 1):
        assert not port_is_open("127.0.0.1", port)
