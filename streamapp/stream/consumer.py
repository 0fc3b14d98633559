"""Faust's Kafka transport with a cheaper hand-over of each fetched message to the streams.

Faust's fetcher delivers every message with
`await self.wait_first(deliver(message), self.suspend_flow.wait())`, which starts four tasks
per message so that a rebalance can interrupt a delivery blocked on a full stream buffer.
While the flow is not suspended, this consumer awaits the delivery directly instead: the
workers' profiles put that machinery at a sixth of the main thread. A rebalance still cancels
the fetcher (Faust stops and restarts it around recovery), so a blocked delivery ends then.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from faust.transport.drivers import aiokafka as driver
from mode.services import WaitResults


class Consumer(driver.Consumer):
    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:  # noqa: ASYNC109 (the overridden signature)
        if len(coros) == 2 and timeout is None and self._delivering(*coros):
            deliver, suspended = coros
            suspended.close()
            return WaitResults([deliver], [await deliver], False)
        return await super().wait_first(*coros, timeout=timeout)

    def _delivering(self, deliver: Any, suspended: Any) -> bool:
        """Whether this is the fetcher's delivery of one message, with the flow running."""
        if not isinstance(deliver, Coroutine) or not isinstance(suspended, Coroutine):
            return False
        frame = getattr(suspended, "cr_frame", None)
        waits_for_suspension = frame is not None and frame.f_locals.get("self") is self.suspend_flow
        return waits_for_suspension and not self.suspend_flow.is_set() and not self.should_stop


class Transport(driver.Transport):
    Consumer = Consumer
