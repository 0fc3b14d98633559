"""Small helpers for running a local server as a child process."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


class ServiceStartError(RuntimeError):
    """A local server did not come up; the message says which and where its log is."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool],
    *,
    process: subprocess.Popen[bytes] | None,
    timeout: float,
    what: str,
    log_path: str | os.PathLike[str] | None = None,
) -> None:
    """Poll `ready` until it is true; fail early if `process` exits, or after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.poll() is not None:
            raise ServiceStartError(
                f"{what} exited with code {process.returncode} while starting (log: {log_path})"
            )
        time.sleep(0.05)
    raise ServiceStartError(f"{what} was not ready after {timeout:.0f}s (log: {log_path})")


def stop_process(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Ask a child to stop with `sig`, then kill it if it is still there after `timeout`."""
    if process.poll() is not None:
        return
    try:
        process.send_signal(sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("pid %s did not stop in %.0fs; killing it", process.pid, timeout)
        process.kill()
        process.wait()
    except ProcessLookupError:
        pass


class LoggedProcess:
    """A child process in its own session, its output appended to `log_path`."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def launch(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Start `command` (in `cwd`, if given); it runs until stop()."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command,
            env=env,
            user=user,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready`; fail with the log's path if the process exits or time runs out."""
        wait_until(
            ready, process=self.process, timeout=timeout, what=self.name, log_path=self.log_path
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop the process (killing it after `timeout`); return its exit code."""
        code = None
        if self.process is not None:
            stop_process(self.process, sig=sig, timeout=timeout)
            code = self.process.returncode
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
