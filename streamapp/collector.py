"""The garbage collector's settings for the long-running processes (the API and the worker)."""

from __future__ import annotations

import gc

# Container allocations (net of frees) between two collections of the youngest generation in a
# worker. CPython's 700 suits short scripts: a worker holds thousands of records in its
# buffers, and every few hundred records a collection walked them all again. Measured: the
# collector took a sixth of a worker's time draining a backlog. (The API showed no gain from
# it in CPU per POST, and its p99 none either: it keeps CPython's threshold.)
WORKER_YOUNG_THRESHOLD = 50_000


def keep_start_out_of_collections() -> None:
    """Keep what the start allocated (modules, the app, pools) out of every later collection.
    Call once the process is set up."""
    gc.collect()
    gc.freeze()


def settle_worker_after_start() -> None:
    """As `keep_start_out_of_collections`, and collect the young generation less often."""
    keep_start_out_of_collections()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(WORKER_YOUNG_THRESHOLD, middle, old)
