"""`make bench`: every benchmark on real PostgreSQL and Apache Kafka; writes the figures to
bench/results.json and the table in bench/README.md.

    .venv/bin/python -m bench.run            # the issue's sizes (1M rows, 100k backlog), ~15 min
    .venv/bin/python -m bench.run --smoke    # tiny sizes, a minute: the scripts still work
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import charts, growth, overload, scaling, scenarios, start, tracing
from bench.scenarios import Figure, Sizes
from bench.stack import BENCH, ROOT, stack
from streamapp.logs import configure_logging

logger = logging.getLogger("bench")

SMOKE = Sizes(
    applications=3_000,
    users=20,
    backlog=2_000,
    seconds=1,
    rounds=1,
    latency_seconds=2,
    latency_rate=50,
    tracing_rounds=1,
    tracing_post_rounds=1,
    writes_rounds=1,
    flood_connections=64,
    flood_seconds=2,
    burst_connections=256,
    burst_seconds=1,
    scaling_backlog=3_000,
    scaling_rounds=1,
    start_rounds=1,
    growth_sizes=(2_000, 6_000),
    growth_backlogs=(1_000, 3_000),
    growth_rounds=1,
)
# bench/README.md explains the benchmarks; the run replaces what stands between these lines.
START, END = "<!-- results: written by bench/run.py -->", "<!-- /results -->"
SUITES = {
    "listings": scenarios.listings,
    "writes": scenarios.writes,
    "drains": scenarios.drains,
    "start": start.start,
    "scaling": scaling.scaling,
    "growth": growth.growth,
    "latency": scenarios.latency,
    "tracing": tracing.tracing,
    "overload": overload.overload,
}


async def run(sizes: Sizes, names: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    with stack() as servers:
        for name in names:
            started = time.monotonic()
            logger.info("running %s", name)
            figures += await SUITES[name](servers, sizes)
            logger.info("%s done in %.0fs", name, time.monotonic() - started)
    return figures


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": _commit(),
    }


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def write_report(figures: list[Figure], sizes: Sizes, command: str, output: Path) -> None:
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command,
        "sizes": sizes.__dict__,
        "figures": [figure.as_dict() for figure in figures],
    }
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    charts.draw(results["figures"], output)
    readme = output / "README.md"
    text = readme.read_text() if readme.exists() else f"{START}\n{END}\n"
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    readme.write_text(f"{before}{START}\n{_markdown(results)}{END}{after}")


def _markdown(results: dict[str, Any]) -> str:
    sizes, machine_info = results["sizes"], results["machine"]
    lines = [
        f"Measured {results['date']} on {machine_info['cpus']} CPUs, "
        f"{machine_info['memory_gib']} GiB, Python {machine_info['python']}, commit "
        f"{machine_info['commit']}, with `{results['command']}`. Real PostgreSQL (embedded) "
        "and Apache Kafka (single node, from the Maven jars), as the test suite runs them.",
        "",
        f"Sizes: {sizes['applications']:,} applications over {sizes['users']} users for the "
        f"listings, a backlog of {sizes['backlog']:,} records, wrk -t2 -c32 for "
        f"{sizes['seconds']:g} s a round, {sizes['rounds']} rounds, each baseline measured "
        "in the same run, alternating with streamapp. Each round's ratio is streamapp's figure "
        "over the baseline's of that round; the table gives the median and the worst of "
        "them, and a target is met only if the worst round meets it (tracing's costs of a few "
        'percent: if the median round does, marked "median").',
        "",
        "| figure | streamapp | baseline | ratio (median) | worst round | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in results["figures"]:
        ours = ", ".join(_number(v) for v in f["ours"])
        base = ", ".join(_number(v) for v in f["baseline"])
        direction = ">=" if f["higher_is_better"] else "<="
        target = "-" if f["target"] is None else f"{direction} {f['target']}x"
        if f["target"] is not None and f.get("judged_by") == "median":
            target += " (median)"
        met = {True: "yes", False: "**no**", None: "-"}[f["met"]]
        lines.append(
            f"| {f['name']} ({f['unit']}) | {ours} | {base} ({f['baseline_name']}) "
            f"| {f['ratio']:.2f}x | {f['worst_ratio']:.2f}x | {target} | {met} |"
        )
    lines += ["", "Also measured:", ""]
    lines += [f"- {f['name']}: {_extras(f)}" for f in results["figures"] if _extras(f)]
    return "\n".join([*lines, ""])


EXTRAS = {
    "p99_ms": "p99 latency (ms)",
    "baseline_p99_ms": "baseline p99 (ms)",
    "p50_ms": "p50 (ms)",
    "max_ms": "max (ms)",
    "applications": "applications timed",
    "worker_start_to_first_processed_s": "worker start to first processed record (s)",
    "errors": "HTTP errors",
    "without_shedding": "without shedding",
    "shed": "answered 503",
    "created": "answered 201",
    "listed": "answered 200",
    "rates": "records/s",
    "longest_gap_s": "longest time between two batches (s)",
    "longest_gaps_s": "longest time between two batches (s)",
    "peak_rss_mib": "peak RSS of a process (MiB)",
}


def _extras(figure: dict[str, Any]) -> str:
    parts = []
    for key, label in EXTRAS.items():
        if key in figure:
            parts.append(f"{label} {_values(figure[key])}")
    return "; ".join(parts)


def _values(value: Any) -> str:
    """A number, the numbers of each round, or those of each variant."""
    if isinstance(value, dict):
        return "; ".join(f"{name}: {_values(numbers)}" for name, numbers in value.items())
    values = value if isinstance(value, list) else [value]
    return ", ".join(_number(v) for v in values)


def _number(value: float) -> str:
    if float(value).is_integer() or value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--only", nargs="*", choices=sorted(SUITES), help="run only these")
    parser.add_argument("--output", type=Path, default=BENCH, help="where results.json goes")
    for name in ("applications", "backlog", "rounds", "seconds"):
        parser.add_argument(f"--{name}", type=float, help=f"override the {name} of the run")
    arguments = parser.parse_args()
    configure_logging("INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sizes = SMOKE if arguments.smoke else Sizes()
    for name in ("applications", "backlog", "rounds"):
        if getattr(arguments, name) is not None:
            setattr(sizes, name, int(getattr(arguments, name)))
    if arguments.seconds is not None:
        sizes.seconds = arguments.seconds
    names = arguments.only or list(SUITES)
    figures = asyncio.run(run(sizes, names))
    command = "python -m bench.run " + " ".join(sys.argv[1:])
    arguments.output.mkdir(parents=True, exist_ok=True)
    write_report(figures, sizes, command.strip(), arguments.output)
    for figure in figures:
        logger.info(
            "%-55s %6.2fx, worst %6.2fx (target %s, met %s)",
            *(figure.name, figure.ratio, figure.worst, figure.target, figure.met),
        )


if __name__ == "__main__":
    main()
