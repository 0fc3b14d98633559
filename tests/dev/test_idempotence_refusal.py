"""A broker without idempotent producers (the embedded tansu broker) is named at start."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from streamapp.dev.broker import EmbeddedBroker
from tools.stack.processes import STREAMAPP, child_env, free_ports


@pytest.fixture
def tansu() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker()
    process = subprocess.Popen(
        broker.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        broker.wait_ready(process)
        yield broker
    finally:
        process.kill()
        process.wait()


def test_a_worker_on_a_broker_without_idempotence_says_which_setting(
    tansu: EmbeddedBroker, database_url: str
) -> None:
    env = child_env(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=tansu.bootstrap_servers,
        PRODUCER_IDEMPOTENCE="true",
        TOPIC_PARTITIONS="2",
    )
    command = [*STREAMAPP, "worker", "--web-port", str(free_ports(1))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)

    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("streamapp: Kafka could not start an idempotent producer")
    assert last.endswith("needs PRODUCER_IDEMPOTENCE=false")
