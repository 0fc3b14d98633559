"""A single-node Apache Kafka (KRaft, combined broker and controller) from Maven Central jars."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from streamapp.dev.processes import LoggedProcess, free_port, port_is_open
from tools.stack.hosts import Host
from tools.stack.tls import Certificates

logger = logging.getLogger(__name__)

TOOLS_DIR = Path(__file__).resolve().parents[1] / "kafka"
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


_AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
    "allow.everyone.if.no.acl.found": "false",
}


@dataclass(frozen=True)
class SecureListeners:
    """Listeners a broker adds beside its plaintext one (kept for the harness itself):
    SASL_SSL with SCRAM-SHA-512 and PLAIN users, and SSL requiring a client certificate."""

    certificates: Certificates
    users: dict[str, str]  # name -> password, for SCRAM-SHA-512 and PLAIN alike
    sasl_ssl_port: int = field(default_factory=free_port)
    ssl_port: int = field(default_factory=free_port)
    # Kafka's StandardAuthorizer: the users get what ACLs grant them, nothing more (the
    # harness, unauthenticated on the plaintext and controller listeners, is a super user).
    authorizer: bool = False

    def properties(self, host: str, plaintext: str, controller: str) -> dict[str, str]:
        certfile, keyfile = self.certificates.server("kafka")
        keystore = certfile.with_name("kafka-keystore.pem")
        keystore.write_bytes(keyfile.read_bytes() + certfile.read_bytes())
        plain_users = " ".join(f'user_{name}="{pw}"' for name, pw in self.users.items())
        listeners = f"SASL_SSL://{host}:{self.sasl_ssl_port},SSL://{host}:{self.ssl_port}"
        # Advertised by the name in the broker's certificate.
        named = f"SASL_SSL://localhost:{self.sasl_ssl_port},SSL://localhost:{self.ssl_port}"
        return {
            "listeners": f"{plaintext},{listeners},{controller}",
            "advertised.listeners": f"{plaintext},{named}",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"
            ),
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            "listener.name.ssl.ssl.client.auth": "required",
            # A client certificate's principal is its CN (for ACLs): User:streamapp.
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.certificates.cafile),
            **(_AUTHORIZER if self.authorizer else {}),
        }

    def scram_arguments(self) -> list[str]:
        """The storage tool's arguments that create the SCRAM users."""
        arguments = []
        for name, password in self.users.items():
            arguments += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return arguments


BROKER_PORT, CONTROLLER_PORT = 9092, 9093  # on a host of its own


class ApacheKafka:
    """One KRaft node (broker and controller), its storage in a temporary directory: a
    cluster of its own, or one node of a `KafkaCluster`. On free loopback ports, or on its
    own `on` host (tools.stack.hosts) at the usual ports."""

    def __init__(
        self,
        *,
        port: int | None = None,
        node_id: int = 1,
        voters: dict[int, tuple[str, int]] | None = None,
        cluster_id: str | None = None,
        heap: str = "768m",
        secure: SecureListeners | None = None,
        on: Host | None = None,
    ) -> None:
        self.on = on
        self.host = on.address if on else "127.0.0.1"
        self.port = port or (BROKER_PORT if on else free_port())
        self.node_id = node_id
        if voters:
            self.controller_port = voters[node_id][1]
        else:
            self.controller_port = CONTROLLER_PORT if on else free_port()
        self.voters = voters  # node id -> controller address, for every node of a cluster
        self.heap = heap
        self.secure = secure
        self.workdir = Path(tempfile.mkdtemp(prefix=f"streamapp-kafka-{node_id}-"))
        self.cluster_id = cluster_id or new_cluster_id()
        self._server = LoggedProcess(f"Apache Kafka {node_id}", self.workdir / "broker.log")
        self._formatted = False
        self._log_start = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._server.log_path

    @property
    def running(self) -> bool:
        process = self._server.process
        return process is not None and process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (formatting its storage the first time); wait until it listens."""
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start the JVM without waiting: a cluster's nodes must start together."""
        classpath = f"{kafka_classpath()}/*"
        properties = self.workdir / "server.properties"
        if not self._formatted:
            properties.write_text(self._properties())
            self._format(classpath, properties)
            self._formatted = True
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # A small, fast-starting JVM: the test broker holds little data.
        jvm = [f"-Xms{min(256, int(self.heap[:-1]))}m", f"-Xmx{self.heap}", "-XX:+UseSerialGC"]
        jvm += ["-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={LOG_CONFIG}"]
        with self.on.inside() if self.on else nullcontext():
            self._server.launch(["java", *jvm, "-cp", classpath, "kafka.Kafka", str(properties)])

    def wait_started(self, timeout: float = 60.0) -> None:
        self._server.wait_until(lambda: self._started_since(self._log_start), timeout)
        logger.info("Apache Kafka %d ready on %s", self.node_id, self.bootstrap_servers)

    def _started_since(self, log_start: int) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(log_start)
            started = b"Kafka Server started" in log.read()
        return started and port_is_open(self.host, self.port)

    def acls(self, action: str, *arguments: str) -> None:
        """Run kafka-acls (`action`: --add or --remove) through the plaintext listener."""
        classpath = f"{kafka_classpath()}/*"
        command = ["--bootstrap-server", self.bootstrap_servers, action, "--force", *arguments]
        self._java(classpath, "org.apache.kafka.tools.AclCommand", *command)

    def stop(self) -> None:
        """Stop the broker; its data stays for a restart."""
        self._server.stop(timeout=30)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; its data stays for a restart."""
        self._server.stop(signal.SIGKILL)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _format(self, classpath: str, properties: Path) -> None:
        """Format the storage. A failed format is tried once more (with a new cluster id
        when the broker is alone): one CI run out of many saw it fail, reason unknown, so
        the tool's output is logged."""
        storage_tool = ["kafka.tools.StorageTool", "format"]
        storage_tool += [] if self.voters else ["--standalone"]
        storage_tool += self.secure.scram_arguments() if self.secure else []
        for attempt in (1, 2):
            try:
                self._java(classpath, *storage_tool, "-t", self.cluster_id, "-c", str(properties))
                return
            except subprocess.CalledProcessError as exc:
                output = (exc.stdout or b"").decode(errors="replace")
                output += (exc.stderr or b"").decode(errors="replace")
                logger.warning("formatting Kafka storage failed (%s): %s", self.cluster_id, output)
                if attempt == 2:
                    raise
                shutil.rmtree(self.workdir / "data", ignore_errors=True)
                if not self.voters:
                    self.cluster_id = new_cluster_id()

    def _java(self, classpath: str, main: str, *args: str) -> None:
        subprocess.run(
            ["java", f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath, main, *args],
            check=True,
            capture_output=True,
        )

    def _properties(self) -> str:
        host, port, controller = self.host, self.port, self.controller_port
        replicas = len(self.voters) if self.voters else 1
        in_sync = max(1, replicas - 1)
        if self.voters:
            quorum = ",".join(f"{node}@{h}:{p}" for node, (h, p) in sorted(self.voters.items()))
            controllers = {"controller.quorum.voters": quorum}
        else:
            controllers = {"controller.quorum.bootstrap.servers": f"{host}:{controller}"}
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **controllers,
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            # Like a production cluster: topics are created on purpose, never by a typo.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(in_sync),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(in_sync),
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(in_sync),
            # The first consumer-group join is not held back waiting for more members.
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "1000000",
        }
        if self.secure:
            settings.update(
                self.secure.properties(
                    host, f"PLAINTEXT://{host}:{port}", f"CONTROLLER://{host}:{controller}"
                )
            )
        return "".join(f"{key}={value}\n" for key, value in settings.items())


def new_cluster_id() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64. Never with a leading "-" (as Kafka's
    own ids never do), which the storage tool would read as an option and fail."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaCluster:
    """Three KRaft nodes (each broker and controller) from the same jars, small heaps: on
    loopback ports, or one node on each of `hosts`."""

    def __init__(self, size: int = 3, heap: str = "384m", hosts: list[Host] | None = None) -> None:
        places: list[Host | None] = list(hosts) if hosts else [None] * size
        voters = {
            node: (place.address, CONTROLLER_PORT) if place else ("127.0.0.1", free_port())
            for node, place in enumerate(places, start=1)
        }
        cluster_id = new_cluster_id()
        self.nodes = [
            ApacheKafka(node_id=node, voters=voters, cluster_id=cluster_id, heap=heap, on=place)
            for node, place in enumerate(places, start=1)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> ApacheKafka:
        return next(node for node in self.nodes if node.node_id == node_id)

    def start(self, timeout: float = 120.0) -> None:
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_started(timeout)

    def remove(self) -> None:
        """Kill every node (a clean stop waits on a quorum that is leaving) and drop its data."""
        for node in self.nodes:
            node.kill()
            shutil.rmtree(node.workdir, ignore_errors=True)
