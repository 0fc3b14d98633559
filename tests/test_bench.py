"""The benchmark scripts at tiny sizes: they still run end to end and report every figure.

The figures themselves come from `make bench`; this only keeps the scripts from rotting.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "list page 1",
    "list one user's page 1",
    "list a deep page by cursor",
    "list a deep page by number",
    "POST /applications",
    "POST /applications p99 at c=32",
    "POST /applications, 2 API processes",
    "1 worker draining the backlog",
    "2 workers draining the backlog",
    "POST, tracing on",
    "1 worker's drain, tracing on",
    "2 workers' gain over 1, against the minimal processor's",
    "1 worker against 1 minimal member, large backlog",
}
# bench/growth.py's figures, named after the largest size (a smoke run's is tiny).
GROWTH = (
    "list page 1 at ",
    "list one user's page 1 at ",
    "list a deep page by cursor at ",
    "list a deep page by number at ",
    "POST /applications at ",
    "1 worker draining a backlog of ",
    "1 worker's peak RSS draining a backlog of ",
)

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk); CI has it"
)


@needs_wrk
@pytest.mark.timeout(900)
def test_bench_smoke_run_reports_every_figure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "KAFKA_"))}
    command = [sys.executable, "-m", "bench.run", "--smoke", "--output", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=850)

    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    names = {figure["name"] for figure in results["figures"]}
    assert names >= FIGURES
    assert any(name.startswith("POST -> processed") for name in names)
    for prefix in GROWTH:
        assert any(name.startswith(prefix) for name in names), prefix
    assert any(name.endswith("against a plain OFFSET") for name in names)
    overload = [figure for figure in results["figures"] if figure["name"].startswith("overload")]
    assert len(overload) == 14  # seven figures for the flood, seven for the burst
    for figure in results["figures"]:
        assert figure["ours"], figure
        if figure["baseline_name"] != "none allowed":  # counts of what must not happen
            assert all(value > 0 for value in figure["ours"]), figure
    readme = (tmp_path / "README.md").read_text()
    assert "| list page 1 (requests/s) |" in readme
    for chart in ("drain-timelines.png", "rate-against-size.png"):
        assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG"), chart


def test_write_path_benchmark_runs(tmp_path: Path) -> None:
    command = [sys.executable, "bench/write_path.py", "--seconds", "0.3", "--concurrency", "4"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "1.00x" in result.stdout


@needs_wrk
@pytest.mark.timeout(300)
def test_soak_smoke_run_checks_everything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "KAFKA_"))}
    output = tmp_path / "soak.json"
    command = [sys.executable, "-m", "bench.soak", "--seconds", "8", "--warmup", "2"]
    command += ["--measure-seconds", "2", "--output", str(output)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)

    soak = json.loads(output.read_text())
    assert result.returncode == (0 if soak["passed"] else 1), result.stderr[-3000:]
    assert set(soak["checks"]) == {
        "no errors",
        "RSS growth under 10% after warm-up",
        "outbox backlog 0 and all processed",
    }
    assert soak["load"]["requests_per_second"] > 0
    assert soak["end"]["stored"] > 0
    assert all(len(samples) >= 2 for samples in soak["rss_mib"].values())


def test_a_target_holds_in_the_worst_round_or_for_small_costs_in_the_median_one() -> None:
    from bench.scenarios import Figure

    rounds = dict(ours=[90.0, 100.0, 80.0, 100.0], baseline=[100.0] * 4, target=0.85)
    assert Figure("POST", "requests/s", **rounds).met is False  # worst round 0.8
    assert Figure("POST", "requests/s", **rounds, judged_by="median").met is True  # 0.95
    cpu = Figure("CPU", "us", [110.0, 100.0, 130.0], [100.0] * 3, 1.2, higher_is_better=False)
    assert cpu.met is False  # worst round 1.3
    cpu.judged_by = "median"
    assert cpu.met is True  # 1.1
