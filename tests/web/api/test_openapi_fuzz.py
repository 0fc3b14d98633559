"""Every operation of the API's own OpenAPI schema, fuzzed by schemathesis against a real API
process on the session's PostgreSQL and Kafka: no 5xx, and every check passes, because the
schema states what the API enforces (lengths, patterns, the errors it answers, `Allow`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.stack.processes import Api, Worker, child_env

EXAMPLES_PER_OPERATION = 30
SEED = "1"  # a fixed seed: the same cases on every run, so a failure is reproducible


@pytest.mark.parametrize("api_key", [None, "fuzz-key-0123456789"], ids=["open", "with-keys"])
def test_schemathesis_finds_nothing_in_any_operation(
    service_env: dict[str, str], tmp_path: Path, api_key: str | None
) -> None:
    """With keys on, its `ignored_auth` check also sends writes without the key."""
    keys = {"API_KEYS": api_key} if api_key else {}
    auth = [f"--header=X-API-Key: {api_key}"] if api_key else []
    # A worker alongside, as in production: `GET /applications/{id}?wait=` then answers as
    # soon as the application is processed instead of waiting out its seconds.
    worker = Worker(child_env(**service_env)).start()
    api = Api(child_env(**service_env, **keys)).start()
    try:
        api.wait_ready()
        worker.wait_ready()
        worker.wait_holding_every_partition()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{api.url}/openapi.json",
                "--checks=all",
                f"--max-examples={EXAMPLES_PER_OPERATION}",
                f"--seed={SEED}",
                "--generation-database=none",
                "--no-color",
                *auth,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            check=False,
        )
    finally:
        api.stop()
        worker.stop()

    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "No issues found" in report
    assert "Tested: 10" in report  # every operation was reached
