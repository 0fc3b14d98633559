"""The garbage collector's settings for the long-running processes (the API and the worker)."""

from __future__ import annotations

import gc

# Container allocations (net of frees) between two collections of the youngest generation.
# CPython's 700 suits short scripts. A worker holds thousands of records in its buffers, and
# every few hundred records a collection walked them all again: the collector took a sixth of
# a worker's time draining a backlog. An API flooded by 5,000 connections holds their
# requests, and collections of every generation (each full one 170 ms, the event loop
# stopped) took 4.7 s of its 10 s: every answer waited on them. Measured in the API without
# a flood: the same CPU per POST, and page 1's p99 at 32 connections a few ms worse.
YOUNG_THRESHOLD = 50_000


def settle_after_start() -> None:
    """Keep what the start allocated (modules, the app, pools) out of every later collection,
    and collect the young generation less often. Call once the process is set up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
