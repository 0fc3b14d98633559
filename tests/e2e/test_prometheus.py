"""A real Prometheus (Debian's package) scrapes a real API and worker with the project's
rules loaded: the metrics arrive, every rule evaluates, and every query of the Grafana
dashboard parses and names only metrics streamapp exports (or records)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tools.stack.processes import Api, Worker, child_env, wait_for
from tools.stack.prometheus import DEPLOY, Prometheus, prometheus_binary

TOKEN = "prometheus-test-token-0123456789"
DASHBOARD = DEPLOY / "grafana" / "streamapp.json"
FILED = 20
# PromQL words that are not metric names.
_PROMQL_WORDS = {
    "sum", "rate", "increase", "delta", "histogram_quantile", "by", "without", "max", "min",
    "avg", "count", "le", "and", "or", "unless", "offset", "bool", "on", "ignoring",
}  # fmt: skip


@pytest.fixture(scope="module")
def scraped(service_env: dict[str, str]) -> Iterator[tuple[Prometheus, Api, Worker]]:
    """An API and a worker of the session's services, and a Prometheus scraping both."""
    if prometheus_binary() is None:
        pytest.skip("needs Debian's prometheus package: apt-get install prometheus")
    env = child_env(**service_env, WORKER_WEB_TOKEN=TOKEN)
    api, worker = Api(env).start(), Worker(env).start()
    prometheus: Prometheus | None = None
    try:
        api.wait_ready()
        worker.wait_ready()
        worker.wait_holding_every_partition()
        prometheus = Prometheus(
            api=f"127.0.0.1:{api.port}",
            workers=[f"127.0.0.1:{worker.web_port}"],
            worker_token=TOKEN,
        ).start()
        yield prometheus, api, worker
    finally:
        if prometheus is not None:
            prometheus.remove()
        api.stop()
        worker.stop()


def exported_names(*expositions: str) -> set[str]:
    """Every series name the processes' /metrics can carry, from their TYPE lines."""
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("", "_total")}
    names = set()
    for text in expositions:
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):
            names |= {name + suffix for suffix in suffixes.get(kind, ("",))}
    return names


def recorded_names() -> set[str]:
    rules = (DEPLOY / "prometheus" / "rules.yml").read_text()
    return set(re.findall(r"- record: (\S+)", rules))


def names_in(expr: str) -> set[str]:
    """The metric names an expression reads (labels, functions and keywords left out)."""
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_labels)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return {word for word in words if word not in _PROMQL_WORDS}


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_prometheus_scrapes_both_and_evaluates_every_rule(
    scraped: tuple[Prometheus, Api, Worker],
) -> None:
    prometheus, api, _ = scraped
    user_name = f"prom-{uuid.uuid4().hex[:8]}"
    for index in range(FILED):
        body = {"user_name": user_name, "description": f"#{index}"}
        assert httpx.post(f"{api.url}/applications", json=body, timeout=10).status_code == 201

    def counted() -> bool:
        created = prometheus.value("sum(streamapp_applications_created_total)")
        processed = prometheus.value("sum(streamapp_records_processed_total)")
        return created == FILED and processed is not None and processed >= FILED

    wait_for(counted, timeout=30, message="the metrics never reached Prometheus")
    # Each processed application's time from its filing is observed once (a batch at a time).
    observed = prometheus.value("sum(streamapp_end_to_end_seconds_count)")
    assert observed == prometheus.value("sum(streamapp_records_processed_total)")
    assert prometheus.value('up{job="streamapp-api"}') == 1
    assert prometheus.value('up{job="streamapp-worker"}') == 1  # scraped with the token

    def every_rule_evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        evaluated = all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if rules and evaluated else None

    rules = wait_for(every_rule_evaluated, timeout=40, interval=1)
    assert {rule["health"] for rule in rules} == {"ok"}, [r for r in rules if r["health"] != "ok"]
    assert len(rules) == len(recorded_names()) + 9
    firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] != "inactive"]
    assert not firing, firing  # a healthy pipeline raises no alert
    # A rate needs two samples: the group's first evaluation (every 15 s) may come too soon.
    wait_for(
        lambda: prometheus.query("streamapp:records_processed:rate1m"),
        timeout=40,
        interval=1,
        message="the recording rule never recorded the processing rate",
    )


def test_every_dashboard_query_parses_and_names_only_streamapp_metrics(
    scraped: tuple[Prometheus, Api, Worker],
) -> None:
    prometheus, api, worker = scraped
    exposition = httpx.get(f"{api.url}/metrics", timeout=10).text
    exposition += httpx.get(f"{worker.url}/metrics/", headers=worker.headers, timeout=10).text
    known = exported_names(exposition) | recorded_names() | {"up"}
    targets = dashboard_targets()
    assert len(targets) >= 10

    for title, expr in targets:
        prometheus.query(expr)  # raises with Prometheus's reason if it does not parse
        unknown = names_in(expr) - known
        assert not unknown, f"panel {title!r} reads {unknown}, which streamapp does not export"


def test_the_name_check_can_tell_an_unknown_metric() -> None:
    known = exported_names("# TYPE streamapp_end_to_end_seconds histogram\n")
    expr = "histogram_quantile(0.99, sum by (le) (rate(streamapp_end_to_end_seconds_bucket[5m])))"
    assert names_in(expr) <= known
    assert names_in("sum(rate(streamapp_no_such_thing_total[5m]))") - known
