"""Retrying with backoff: one helper for every loop that waits out a dependency."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Backoff:
    """Delays that double from `initial` up to `maximum`; `reset()` starts over."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = max(initial, maximum)
        self._delay = initial

    def next(self) -> float:
        """Return the delay to wait now; the following one is twice as long (capped)."""
        delay = self._delay
        self._delay = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._delay = self.initial


class RetryStopped(Exception):
    """The stop condition became true before the operation succeeded."""


# How often a wait between attempts looks at the stop condition.
STOP_CHECK_SECONDS = 0.25


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    what: str,
    backoff: Backoff,
    within: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> T:
    """Run `operation` until it succeeds, waiting `backoff` between failures in `retry_on`.

    Gives up by re-raising the last error when the next wait would end more than `within`
    seconds after the first try, and by raising RetryStopped as soon as `stop()` is true
    between attempts.
    """
    deadline = None if within is None else time.monotonic() + within
    while True:
        try:
            return await operation()
        except retry_on as exc:
            delay = backoff.next()
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            logger.warning("%s (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
            await _wait(delay, stop)


async def _wait(seconds: float, stop: Callable[[], bool] | None) -> None:
    """Sleep `seconds`; raise RetryStopped as soon as `stop()` is true."""
    if stop is None:
        await asyncio.sleep(seconds)
        return
    until = time.monotonic() + seconds
    while not stop():
        remaining = until - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, STOP_CHECK_SECONDS))
    raise RetryStopped()


async def repeat(
    job: Callable[[], Awaitable[bool]], *, interval: float, max_backoff: float, what: str
) -> None:
    """Run `job` every `interval` seconds, forever; back off while it fails.

    `job` returns False (or raises) when it failed, and the next run waits twice as long,
    up to `max_backoff`; a success returns to `interval`.
    """
    backoff = Backoff(interval, max_backoff)
    while True:
        await asyncio.sleep(backoff.next())
        try:
            healthy = await job()
        except Exception as exc:
            logger.warning("%s failed (%s: %s)", what, type(exc).__name__, exc)
            healthy = False
        if healthy:
            backoff.reset()
