"""The per-minute counts' hour: the minutes the workers' window table, /stats/minutes/ and the
dashboard show (pure arithmetic, importable without the Faust app)."""

from __future__ import annotations

from datetime import timedelta

WINDOW_SECONDS = 60.0
WINDOW_KEPT = timedelta(hours=1)
MINUTES_SHOWN = int(WINDOW_KEPT.total_seconds() // WINDOW_SECONDS)


def first_kept_minute(now: float) -> float:
    """The start of the oldest of the minutes shown (the current one is the newest)."""
    current = (now // WINDOW_SECONDS) * WINDOW_SECONDS
    return current - (MINUTES_SHOWN - 1) * WINDOW_SECONDS


def minutes_shown(now: float) -> list[float]:
    """The starts of the minutes shown, oldest first."""
    first = first_kept_minute(now)
    return [first + n * WINDOW_SECONDS for n in range(MINUTES_SHOWN)]
