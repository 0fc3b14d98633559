"""The workers' table manager: Faust's, without its one-second wait at start.

Faust's TableManager sleeps a second before it starts, so that tables declared late (after
the app started) are still registered. Here every table is declared when its module is
imported, before the worker starts; one declared later would fail loudly ("Too late to add
tables"), not be missed. Without the wait, a worker processes its first record a second
sooner (make bench: worker start to first processed record).
"""

from __future__ import annotations

from faust.tables import TableManager
from typing_extensions import override


class EagerTableManager(TableManager):
    @override
    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()
