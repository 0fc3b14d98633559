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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.scenarios import (
    Figure,
    Sizes,
    _drain_with_workers,
    _http_figure,
    _publish_backlog,
    _reset,
)
from bench.stack import ROOT, Load, Stack, running, start_api, start_worker, wait_assigned, wrk
from streamapp.services.generator import Plan, generate
from tools.stack.otlp import OtlpReceiver

logger = logging.getLogger(__name__)

# The last commit before tracing came in: the baseline of "tracing off costs nothing".
BEFORE_TRACING = "fcf2c8f"
# "on": streamapp's default sampling (one POST in ten); "all": every trace recorded.
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


async def tracing(stack: Stack, sizes: Sizes) -> list[Figure]:
    sizes = replace(sizes, rounds=sizes.tracing_rounds)
    sink = OtlpReceiver(decode=False).start()
    try:
        with code_before_tracing() as before:
            posts = await _posts(stack, sizes, before, sink)
            drains = await _drains(stack, sizes, before, sink)
    finally:
        sink.stop()
    logger.info("the OTLP sink took %d export requests", sink.requests)
    figures = [
        _http_figure("POST, tracing on", posts["on"], posts["off"], 0.90, "tracing off"),
        Figure(
            "1 worker's drain, tracing on",
            "records/s",
            drains["on"],
            drains["off"],
            0.90,
            baseline_name="tracing off",
        ),
        _http_figure("POST, every trace recorded", posts["all"], posts["off"], None, "off"),
        Figure(
            "1 worker's drain, every trace recorded",
            "records/s",
            drains["all"],
            drains["off"],
            None,
            baseline_name="tracing off",
        ),
    ]
    if posts["before"]:
        figures += [
            _http_figure(
                "POST, tracing off", posts["off"], posts["before"], 0.98, "before tracing"
            ),
            Figure(
                "1 worker's drain, tracing off",
                "records/s",
                drains["off"],
                drains["before"],
                0.98,
                baseline_name="before tracing",
            ),
        ]
    return figures


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
) -> dict[str, list[Load]]:
    url = await stack.database("tracing_writes")
    worker = start_worker(stack.env(url))
    results: dict[str, list[Load]] = {variant: [] for variant in VARIANTS}
    with running(worker):
        wait_assigned([worker])
        apis = {
            v: start_api(stack.env(url, **settings_of(v, before, sink)), cwd=cwd_of(v, before))
            for v in variants(before)
        }
        with running(*apis.values()):
            for round_ in range(sizes.rounds):
                for variant in rotated(list(apis), round_):
                    url = f"{apis[variant].url}/applications"
                    results[variant].append(wrk(url, seconds=sizes.seconds, script="post.lua"))
    return results


async def _drains(
    stack: Stack, sizes: Sizes, before: Path | None, sink: OtlpReceiver
) -> dict[str, list[float]]:
    url = await stack.database("tracing_drain")
    plan = Plan(count=sizes.backlog, users=sizes.users, processed=False, prefix="trace")
    await generate(url, plan)
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_ in range(sizes.rounds):
        for variant in rotated(list(variants(before)), round_):
            await _reset(url)
            with stack.fresh_kafka():
                # Records with traceparents, as tracing on the API's side leaves them.
                await _publish_backlog(stack.kafka.bootstrap_servers, url, traced=True)
                rate, _ = await _drain_with_workers(
                    stack,
                    url,
                    sizes.backlog,
                    1,
                    cwd_of(variant, before),
                    **settings_of(variant, before, sink),
                )
            rates[variant].append(rate)
    return rates
