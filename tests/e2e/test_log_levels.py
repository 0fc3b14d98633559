"""Every accepted LOG_LEVEL starts the API, `streamapp worker` and `faust -A ... worker`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from streamapp.dev.processes import free_port
from tests.harness.effects import TOPIC
from tools.stack.processes import Api, StreamappProcess, Worker, child_env, wait_for

FAUST = str(Path(sys.executable).with_name("faust"))
BELOW = {
    "DEBUG": (),
    "INFO": ("DEBUG",),
    "WARNING": ("DEBUG", "INFO"),
    "ERROR": ("DEBUG", "INFO", "WARNING"),
    "CRITICAL": ("DEBUG", "INFO", "WARNING", "ERROR"),
}


class FaustWorker(Worker):
    """The same worker, started the way Faust documents it."""

    def start(self) -> StreamappProcess:
        port = str(self.web_port)
        self.launch(
            [FAUST, "-A", "streamapp.stream.app", "worker", "--web-port", port], env=self.env
        )
        return self


LEVEL = re.compile(
    # streamapp's format ("2026-12-01 10:00:00,000 INFO    name: ...") or Faust's ("[INFO]").
    r"(?:^\S+ \S+ |\[)(DEBUG|INFO|WARNING|ERROR|CRITICAL)[ \]]",
    re.MULTILINE,
)


def levels_in(log: str) -> set[str]:
    return set(LEVEL.findall(log))


LIBRARY_LINE = re.compile(
    r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(\w+)[\w.]*: ", re.MULTILINE
)


def lines_by_library(log: str) -> set[tuple[str, str]]:
    """(level, top-level logger name) of every line in streamapp's text format."""
    return set(LIBRARY_LINE.findall(log))


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "ERROR", "CRITICAL"])
def test_every_log_level_starts_every_process_and_is_honoured(
    service_env: dict[str, str], level: str
) -> None:
    env = child_env(**{**service_env, "LOG_LEVEL": level})
    env["WORKER_DATA_DIR"] = str(Path(env.get("TMPDIR", "/tmp")) / f"streamapp-{free_port()}")
    processes = [Api(env).start(), Worker(env).start(), FaustWorker(env).start()]
    try:
        for process in processes:
            process.wait_ready()
        # Until both workers have joined the group (aiokafka logs that at INFO).
        for worker in processes[1:]:
            assert isinstance(worker, Worker)
            wait_for(lambda w=worker: w.assigned_partitions(TOPIC), 90, message="no partitions")
    finally:
        for process in processes:
            process.stop()

    for process in processes:
        seen = levels_in(process.log())
        assert not seen & set(BELOW[level.upper()]), (process.name, seen, process.log()[-2000:])
        if level.upper() in ("DEBUG", "INFO"):
            assert level.upper() in seen, (process.name, process.log()[-2000:])
            # The libraries follow it too: Faust and aiokafka in workers at the level itself,
            # uvicorn in the API (it has nothing to say below INFO at start) at INFO.
            found = lines_by_library(process.log())
            wanted = (
                {("INFO", "uvicorn")}
                if isinstance(process, Api)
                else {(level.upper(), "faust"), (level.upper(), "aiokafka")}
            )
            assert wanted <= found, (process.name, wanted - found)
