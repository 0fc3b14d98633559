"""What tracing costs: POST /applications and a worker's drain, with the code from before
tracing existed, with tracing off, and with tracing on (every span exported over OTLP/HTTP
to a sink on this machine), alternating round by round in one run."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios import (
    Figure,
    Sizes,
    _drain_with_workers,
    _publish_backlog,
    _reset,
)
from bench.stack import (
    ROOT,
    Stack,
    cpu_seconds,
    running,
    start_api,
    start_worker,
    wait_assigned,
    wrk,
)
from streamapp.services.generator import Plan, generate
from streamapp.tracing import DEFAULT_RATIO
from tools.stack.otlp import OtlpReceiver

logger = logging.getLogger(__name__)

# The last commit before tracing came in: the baseline of "tracing off costs nothing".
BEFORE_TRACING = "fcf2c8f"
# "on": streamapp's default sampling (one POST in twenty); "all": every trace recorded.
VARIANTS = ("before", "off", "on", "all")


@contextmanager
def code_before_tracing() -> Iterator[Path | None]:
    """A checkout of BEFORE_TRACING, to run processes from (PYTHONPATH); None where the
    history does not have it (a shallow clone): the "before" figures are left out then."""
    git = ["git", "-C", str(ROOT)]
    known = subprocess.run([*git, "cat-file", "-e", f"{BEFORE_TRACING}^{{commit}}"], check=False)
    if known.returncode != 0:
        logger.warning(
            "commit %s is not in this clone: no 'before tracing' figures", BEFORE_TRACING
        )
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="streamapp-before-tracing-"))
    worktree = folder / "streamapp"
    subprocess.run(
        [*git, "worktree", "add", "--quiet", "--detach", str(worktree), BEFORE_TRACING],
        check=True,
    )
    try:
        # Processes started with PYTHONPATH=worktree run the old code, not the installed one.
        where = subprocess.run(
            [sys.executable, "-c", "import streamapp; print(streamapp.__file__)"],
            env={**os.environ, "PYTHONPATH": str(worktree)},
            cwd=worktree,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert where.startswith(str(worktree)), where
        yield worktree
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(worktree)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def settings_of(variant: str, before: Path | None, sink: OtlpReceiver) -> dict[str, str]:
    if variant == "before":
        return {"PYTHONPATH": str(before)}
    if variant == "on":
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
    if variant == "all":
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_TRACES_SAMPLER": "always_on"}
    return {}


@dataclass
class Runs:
    """One variant's rounds: throughput, and CPU time per request (or record)."""

    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


# The figures: (what, variant, its baseline variant, target). Throughput must not fall
# below the target; CPU per request must not rise above its inverse.
COMPARISONS = [
    ("tracing off", "off", "before", 0.98),
    ("tracing on", "on", "off", 0.90),
    ("every trace recorded", "all", "off", None),
]


async def tracing(stack: Stack, sizes: Sizes) -> list[Figure]:
    sink = OtlpReceiver(decode=False).start()
    try:
        with code_before_tracing() as before:
            posts = await _posts(stack, sizes, before, sink)
            drains = await _drains(stack, sizes, before, sink)
    finally:
        sink.stop()
    logger.info("the OTLP sink took %d export requests", sink.requests)
    figures = []
    for what, variant, baseline, target in COMPARISONS:
        if not posts[baseline].rates:  # no "before" in a shallow clone
            continue
        figures += _figures(
            f"POST, {what}", "requests/s", "request", posts, variant, baseline, target
        )
        figures += _figures(
            f"1 worker's drain, {what}", "records/s", "record", drains, variant, baseline, target
        )
    return figures


def _figures(
    name: str,
    unit: str,
    per: str,
    runs: dict[str, Runs],
    variant: str,
    baseline: str,
    target: float | None,
) -> list[Figure]:
    ours, base = runs[variant], runs[baseline]
    label = {"before": "before tracing", "off": "tracing off"}[baseline]
    notes = {"p99_ms": ours.p99_ms, "baseline_p99_ms": base.p99_ms} if ours.p99_ms else {}
    # Costs of a few percent, within one round's noise (up to 17% between two runs of the
    # same code here): judged by the median round.
    return [
        Figure(
            name,
            unit,
            ours.rates,
            base.rates,
            target,
            baseline_name=label,
            notes=notes,
            judged_by="median",
        ),
        Figure(
            f"{name}: CPU per {per}",
            "us",
            ours.cpu_us,
            base.cpu_us,
            None if target is None else round(1 / target, 3),
            higher_is_better=False,
            baseline_name=label,
            judged_by="median",
        ),
    ]


def cwd_of(variant: str, before: Path | None) -> Path | None:
    """Where a variant's processes run: the old checkout's, so `python -m` finds its code."""
    return before if variant == "before" else None


def rotated(names: list[str], round_: int) -> list[str]:
    """The variants in another order each round, so none always runs first (or after)."""
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def variants(before: Path | None) -> tuple[str, ...]:
    return VARIANTS if before is not None else VARIANTS[1:]


async def _posts(
    stack: Stack, sizes: Sizes, before: Path | None, sink: OtlpReceiver
) -> dict[str, Runs]:
    url = await stack.database("tracing_writes")
    worker = start_worker(stack.env(url))
    runs = {variant: Runs() for variant in VARIANTS}
    with running(worker):
        wait_assigned([worker])
        apis = {
            v: start_api(stack.env(url, **settings_of(v, before, sink)), cwd=cwd_of(v, before))
            for v in variants(before)
        }
        with running(*apis.values()):
            for round_ in range(sizes.tracing_post_rounds):
                for variant in rotated(list(apis), round_):
                    api = apis[variant]
                    cpu = cpu_seconds(api)
                    load = wrk(f"{api.url}/applications", seconds=sizes.seconds, script="post.lua")
                    time.sleep(1)  # the sends of the last requests
                    requests = load.requests_per_second * sizes.seconds
                    runs[variant].rates.append(load.requests_per_second)
                    runs[variant].p99_ms.append(load.p99_ms)
                    runs[variant].cpu_us.append(1e6 * (cpu_seconds(api) - cpu) / requests)
    return runs


async def _drains(
    stack: Stack, sizes: Sizes, before: Path | None, sink: OtlpReceiver
) -> dict[str, Runs]:
    url = await stack.database("tracing_drain")
    plan = Plan(count=sizes.backlog, users=sizes.users, processed=False, prefix="trace")
    await generate(url, plan)
    runs = {variant: Runs() for variant in VARIANTS}
    for round_ in range(sizes.tracing_rounds):
        for variant in rotated(list(variants(before)), round_):
            await _reset(url)
            with stack.fresh_kafka():
                # Records as tracing on the API's side leaves them: its sampled share with a
                # traceparent (every one for "all").
                traced = 1.0 if variant == "all" else DEFAULT_RATIO
                backlog = await _publish_backlog(stack.kafka.bootstrap_servers, url, traced=traced)
                drain = await _drain_with_workers(
                    stack,
                    url,
                    backlog,
                    sizes.backlog,
                    1,
                    cwd_of(variant, before),
                    **settings_of(variant, before, sink),
                )
            runs[variant].rates.append(drain.rate)
            runs[variant].cpu_us.append(drain.cpu_per_record_us)
    return runs
