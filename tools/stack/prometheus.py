"""A real Prometheus (Debian's `prometheus` package) scraping streamapp processes, with the
project's rules loaded: for the tests of the rules and the dashboard."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from streamapp.dev.processes import LoggedProcess
from tools.stack.processes import free_ports

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class Prometheus(LoggedProcess):
    """Prometheus on a free loopback port, scraping `api` and `workers` every second."""

    def __init__(self, api: str, workers: list[str], worker_token: str | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="streamapp-prometheus-"))
        super().__init__("Prometheus", self.workdir / "prometheus.log")
        self.port = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, self.workdir / "rules.yml")
        worker_job: dict[str, Any] = {
            "job_name": "streamapp-worker",
            "metrics_path": "/metrics/",
            "static_configs": [{"targets": workers}],
        }
        if worker_token:
            (self.workdir / "worker-token").write_text(worker_token)
            worker_job["authorization"] = {"credentials_file": str(self.workdir / "worker-token")}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "streamapp-api",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [api]}],
                },
                worker_job,
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))

    def start(self) -> Prometheus:
        binary = prometheus_binary()
        assert binary, "Debian's prometheus package is not installed"
        self.launch(
            [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ]
        )
        self.wait_until(self._ready, timeout=30)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; return the answer's `data` (raises on an error status)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` gives now (raises if Prometheus cannot evaluate it)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of `expr` now, or None when it has none."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
