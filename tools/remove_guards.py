"""Remove each guard of the delivery contract in a scratch copy and check its test fails.

    python -m tools.remove_guards          (or: make guard-check)

A loss-path test that still passes with its guard removed protects nothing. For each guard,
this copies the project, takes the guard out (a textual edit that must match exactly, so a
change to the guarded code makes this fail loudly rather than test nothing), runs the tests
that pin it, and reports which failed. It exits 1 if any guard's tests all passed.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CONSUMER = "streamapp/stream/delivery/consumer.py"
ACKS = "streamapp/stream/delivery/acks.py"
BATCHES = "streamapp/stream/delivery/batches.py"
TESTS = "tests/stream/delivery"


@dataclass(frozen=True)
class Removal:
    guard: str
    path: str
    old: str
    new: str
    tests: str  # a pytest -k expression


REMOVALS = (
    Removal(
        "1. Consumer.ack takes acks only for records declared done",
        CONSUMER,
        "            if key in self._done:",
        "            if True:",
        "ack_counts or failed_tables or given_up or released",
    ),
    Removal(
        "2. Consumer._new_offset commits only from the exact commit base",
        CONSUMER,
        "        if head is None or self._first_pending(tp) != head:",
        "        if False:",
        "starts_exactly or first_commit",
    ),
    Removal(
        "3. Consumer._add_gap records no gap on acked topics",
        CONSUMER,
        "    @override\n    async def _add_gap(",
        "    async def _no_add_gap(",
        "jumped_over",
    ),
    Removal(
        "4. Consumer.reread_stuck_partitions seeks a stuck partition back",
        CONSUMER,
        "            await self.seek(tp, base)",
        "            pass",
        "stuck_behind",
    ),
    Removal(
        "5. ConsumerThread._fetch_records puts back what a fetch took for unwanted partitions",
        CONSUMER,
        "        return rewind_unwanted(consumer, dict(records), wanted)",
        "        return dict(records)",
        "spanning_a_rebalance",
    ),
    Removal(
        "6. Consumer.wait_first awaits a delivery directly while the flow runs",
        CONSUMER,
        "    @override\n    async def wait_first(",
        "    async def _no_wait_first(",
        "awaited_directly",
    ),
    Removal(
        "7. batches lets go of what it gathered when it stops",
        BATCHES,
        "        for event in gathered:  # gathered, never handed over",
        "        for event in []:  # gathered, never handed over",
        "gathered_when",
    ),
    Removal(
        "8a. Delivery acks a batch only after its tables' write",
        ACKS,
        "            self._write(effects)\n",
        "            self._consumer().done(event.message for event in events)\n"
        "            await self._ack(events)\n"
        "            self._write(effects)\n",
        "failed_tables",
    ),
    Removal(
        "8b. Delivery writes held batches at once when a rebalance begins",
        ACKS,
        "        if self._app.rebalancing or self._app.should_stop:",
        "        if self._app.should_stop:",
        "rebalance_makes",
    ),
    Removal(
        "8c. Delivery lets go of held batches when a batch is given up",
        ACKS,
        "            await self.release(self._take()[1])\n",
        "",
        "given_up",
    ),
    Removal(
        "8d. Delivery writes what is held before the app stops",
        ACKS,
        "        app.before_stop.append(self.stop)\n",
        "",
        "the_stop_writes",
    ),
)


def check(removal: Removal, scratch: Path) -> bool:
    """Whether the guard's tests fail with it removed (restored afterwards)."""
    path = scratch / removal.path
    source = path.read_text()
    if source.count(removal.old) != 1:
        raise SystemExit(f"{removal.guard}: the guarded code changed; update {__file__}")
    path.write_text(source.replace(removal.old, removal.new))
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TESTS,
             "-k", removal.tests],
            cwd=scratch, capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        path.write_text(source)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    logger.info("%s removed: %s", removal.guard, summary)
    return run.returncode == 1 and " failed" in summary


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="streamapp-guards-") as tmp:
        scratch = Path(tmp)
        for part in ("streamapp", "tests", "tools", "setup.cfg", "pyproject.toml"):
            copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
            copy(ROOT / part, scratch / part)
        unguarded = [r.guard for r in REMOVALS if not check(r, scratch)]
    if unguarded:
        logger.error("tests still pass without: %s", "; ".join(unguarded))
        return 1
    logger.info("every guard's tests fail without it (%d guards)", len(REMOVALS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
