"""A single-node Apache Kafka (KRaft, combined broker and controller) from Maven Central jars."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from streamapp.dev.processes import LoggedProcess, free_port, port_is_open

logger = logging.getLogger(__name__)

TOOLS_DIR = Path(__file__).resolve().parents[2] / "tools" / "kafka"
POM = TOOLS_DIR / "pom.xml"
LOG_CONFIG = TOOLS_DIR / "log4j2.yaml"
CACHE_ROOT = Path(os.environ.get("STREAMAPP_CACHE", Path.home() / ".cache" / "streamapp"))


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot be fetched or started here; the message says what is missing."""


def kafka_classpath() -> Path:
    """Return a folder with the broker's jars, fetching them with Maven once (then cached)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    libs = CACHE_ROOT / f"kafka-libs-{digest}"
    if (libs / ".complete").exists():
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaUnavailable(
                f"`{tool}` is not on PATH: the test suite runs Apache Kafka from its Maven Central "
                "jars and needs Java 17+ and Maven (or set TEST_KAFKA_BOOTSTRAP_SERVERS)"
            )
    logger.info("fetching Apache Kafka jars into %s", libs)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaUnavailable(f"mvn could not fetch Apache Kafka:\n{result.stdout}{result.stderr}")
    (libs / ".complete").touch()
    return libs


class ApacheKafka:
    """One KRaft broker on free loopback ports, its storage in a temporary directory."""

    def __init__(self, *, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.controller_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="streamapp-kafka-"))
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        self._server = LoggedProcess("Apache Kafka", self.workdir / "broker.log")
        self._formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._server.log_path

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (formatting its storage the first time); wait until it listens."""
        classpath = f"{kafka_classpath()}/*"
        properties = self.workdir / "server.properties"
        if not self._formatted:
            properties.write_text(self._properties())
            storage_tool = ["kafka.tools.StorageTool", "format", "--standalone"]
            self._java(classpath, *storage_tool, "-t", self.cluster_id, "-c", str(properties))
            self._formatted = True
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # A small, fast-starting JVM: the test broker holds little data.
        jvm = ["-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
        jvm += [f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath]
        self._server.launch(["java", *jvm, "kafka.Kafka", str(properties)])
        self._server.wait_until(lambda: self._started_since(log_start), timeout)
        logger.info("Apache Kafka ready on %s", self.bootstrap_servers)

    def _started_since(self, log_start: int) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(log_start)
            started = b"Kafka Server started" in log.read()
        return started and port_is_open(self.host, self.port)

    def stop(self) -> None:
        """Stop the broker; its data stays for a restart."""
        self._server.stop(timeout=30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _java(self, classpath: str, main: str, *args: str) -> None:
        subprocess.run(
            ["java", f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath, main, *args],
            check=True,
            capture_output=True,
        )

    def _properties(self) -> str:
        host, port, controller = self.host, self.port, self.controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            # Like a production cluster: topics are created on purpose, never by a typo.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The first consumer-group join is not held back waiting for more members.
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "1000000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())
