"""A small process supervisor: start children, prefix their output, stop them in order.

SIGINT and SIGTERM become an orderly stop at any point of the run; a child that dies ends the
watch, so the caller can stop the rest.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from typing import IO

from streamapp.dev.processes import stop_process

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 20.0


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived while the children were still starting."""


@dataclass
class Child:
    """A supervised process, the prefix of its output lines, and when it stops."""

    name: str
    process: subprocess.Popen[bytes]
    stop_order: int
    pump: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Runs children until a stop is requested or one of them dies."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self._starting = True
        self._output_lock = threading.Lock()
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def spawn(self, name: str, command: list[str], env: dict[str, str], stop_order: int) -> Child:
        """Start `command`; children with a lower `stop_order` are stopped first."""
        # Own session: Ctrl-C reaches only the supervisor, which then stops children in order.
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        child = Child(name, process, stop_order)
        child.pump = threading.Thread(
            target=self._stream, args=(name, process.stdout), daemon=True, name=f"out-{name}"
        )
        child.pump.start()
        self.children.append(child)
        return child

    def watch(self) -> int:
        """Wait for a stop request (0) or a child that died (1)."""
        self._starting = False
        while not self.stop_requested.wait(0.5):
            dead = next((c for c in self.children if c.process.poll() is not None), None)
            if dead is not None:
                code = dead.process.returncode
                logger.error(
                    "%s exited with code %s; stopping everything (its output is above)",
                    dead.name,
                    code,
                )
                return 1
        return 0

    def stop_all(self) -> None:
        """Stop the children, in groups of the same stop order, each group all at once."""
        self._starting = False  # a second Ctrl-C must not interrupt the shutdown
        for order in sorted({child.stop_order for child in self.children}):
            self._stop([child for child in self.children if child.stop_order == order])
        self.children.clear()

    def _on_signal(self, signum: int, _frame: object) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_requested.set()
        if self._starting:
            raise StopRequested()

    def _stream(self, name: str, output: IO[bytes]) -> None:
        width = max(8, len(name))
        for line in iter(output.readline, b""):
            with self._output_lock:
                sys.stdout.write(f"{name:<{width}} | {line.decode(errors='replace')}")
                sys.stdout.flush()

    def _stop(self, children: list[Child]) -> None:
        running = [c for c in children if c.process.poll() is None]
        if running:
            logger.info("stopping %s", ", ".join(c.name for c in running))
        for child in running:
            with suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        for child in children:
            stop_process(child.process, timeout=STOP_TIMEOUT)
            _kill_group(child.process.pid)
            if child.pump is not None:
                child.pump.join(timeout=5)


def _kill_group(pid: int) -> None:
    """Kill whatever the child's process group still holds (it was the group leader)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
