"""The retry helper: doubling delays, retry only on the named errors, give up after `within`."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from streamapp.retry import Backoff, RetryStopped, repeat, retry


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(0.5, 3.0)

    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


class Flaky:
    """Fails with `error` the first `failures` calls, then returns how often it was called."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


async def test_retry_returns_once_the_operation_succeeds() -> None:
    operation = Flaky(3, ConnectionError("down"))

    result = await retry(operation, retry_on=OSError, what="flaky", backoff=Backoff(0.01, 0.02))

    assert result == 4


async def test_retry_lets_other_errors_through_at_once() -> None:
    operation = Flaky(1, ValueError("a bug, not an outage"))

    with pytest.raises(ValueError, match="a bug"):
        await retry(operation, retry_on=OSError, what="flaky", backoff=Backoff(0.01, 0.02))

    assert operation.calls == 1


async def test_retry_gives_up_with_the_last_error_after_within() -> None:
    operation = Flaky(1_000, ConnectionError("still down"))
    started = time.monotonic()

    with pytest.raises(ConnectionError, match="still down"):
        await retry(
            operation, retry_on=OSError, what="flaky", backoff=Backoff(0.05, 0.1), within=0.3
        )

    assert time.monotonic() - started < 0.5
    assert 2 <= operation.calls <= 6


async def test_retry_stops_when_cancelled() -> None:
    operation = Flaky(1_000, ConnectionError("down"))
    task = asyncio.create_task(
        retry(operation, retry_on=OSError, what="flaky", backoff=Backoff(0.01, 0.01))
    )
    await asyncio.sleep(0.1)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    calls = operation.calls
    await asyncio.sleep(0.05)
    assert operation.calls == calls


async def test_repeat_backs_off_while_the_job_fails_and_recovers_after() -> None:
    started = time.monotonic()
    runs: list[float] = []

    async def job() -> bool:
        runs.append(time.monotonic() - started)
        if len(runs) in (2, 3):
            raise ConnectionError("down")
        return True

    task = asyncio.create_task(repeat(job, interval=0.1, max_backoff=0.8, what="job"))
    while len(runs) < 5:
        await asyncio.sleep(0.01)
    task.cancel()

    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    # 0.1 after a success; 0.2 and 0.4 after the first and second failure; 0.1 again after.
    assert gaps == pytest.approx([0.1, 0.2, 0.4, 0.1], abs=0.07)


async def test_retry_stops_between_attempts_once_the_stop_condition_holds() -> None:
    operation = Flaky(1_000, ConnectionError("down"))
    stopping = False

    async def stop_soon() -> None:
        nonlocal stopping
        await asyncio.sleep(0.3)
        stopping = True

    started = time.monotonic()
    asyncio.get_running_loop().create_task(stop_soon())
    with pytest.raises(RetryStopped):
        await retry(
            operation,
            retry_on=OSError,
            what="flaky",
            backoff=Backoff(10.0, 10.0),  # would sleep ten seconds without the stop
            stop=lambda: stopping,
        )

    assert time.monotonic() - started < 1.0
    assert operation.calls == 1
