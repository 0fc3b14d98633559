"""The garbage collector's settings for the long-running processes (the API and the worker)."""

from __future__ import annotations

import gc

# Container allocations (net of frees) between two collections of the youngest generation.
# CPython's 700 suits short scripts: a worker holds thousands of records in its buffers and the
# API a request's worth of objects per connection, so every few hundred records or requests a
# collection walked them all again. Measured: the collector took a sixth of a worker's time
# draining a backlog, and the API spent a fifth more CPU per POST than with this threshold.
YOUNG_THRESHOLD = 50_000


def settle_after_start() -> None:
    """Keep what the start allocated (modules, the app, pools) out of every later collection,
    and collect the young generation less often. Call once the process is set up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
