"""The minimal processor the drain benchmarks compare against: a plain aiokafka consumer in a
group, one UPDATE per fetched batch, its offsets committed after it. It runs until stopped,
one process per group member (as the workers do), so that two members can use two cores.
It imports nothing else of the benchmarks, so that members started together join together.

    python -m bench.minimal --group bench-minimal   # DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal

import asyncpg
from aiokafka import AIOKafkaConsumer

logger = logging.getLogger("bench.minimal")

UPDATE_SQL = """
UPDATE applications SET status = 'processed', processed_at = now()
WHERE id = ANY($1::integer[]) AND status = 'new'
"""
TOPIC = "new_applications"
BATCH = 500


async def process(group: str) -> None:
    """Consume `new_applications` in `group` until SIGTERM."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=BATCH,
    )
    await consumer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            ids = [json.loads(r.value)["id"] for records in batches.values() for r in records]
            if ids:
                await connection.execute(UPDATE_SQL, ids)
                # A rebalance between the fetch and here fails the commit; the next owner
                # reads those records again, and the UPDATE changes nothing the second time.
                with contextlib.suppress(Exception):
                    await consumer.commit()
    finally:
        await consumer.stop()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--group", default="bench-minimal")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(process(parser.parse_args().group))


if __name__ == "__main__":
    main()
