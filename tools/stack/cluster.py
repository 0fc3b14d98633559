"""The whole system spread over hosts of its own on one machine (tools.stack.hosts).

Three Apache Kafka brokers (KRaft, replication 3, min ISR 2), PostgreSQL, the API and the
workers each run on a host of their own; this process lives on a `client` host. Every link
between them crosses the bridge, so a host can be cut off and its peers hang, as on a real
network. `python -m tools.stack.cluster` (`make cluster`) starts it for a person to try.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import socket
import sys
from contextlib import suppress
from typing import Any

from streamapp import migrate
from streamapp.dev.postgres import EmbeddedPostgres
from tools.stack.hosts import Host, HostsUnavailable, Network
from tools.stack.kafka import KafkaCluster, kafka_classpath
from tools.stack.processes import QUICK_SETTINGS, Api, Worker, child_env

logger = logging.getLogger(__name__)

BROKERS = 3
WORKER_HOSTS = 3
PARTITIONS = 6
API_PORT = 8000
POSTGRES_PORT = 5432
DATABASE = "streamapp"

# Short consumer-group timings, so a lost worker is noticed in seconds; no redelivery sweep,
# so nothing but the delivery contract keeps an application from being lost.
CLUSTER_SETTINGS = {
    **QUICK_SETTINGS,
    "TOPIC_PARTITIONS": str(PARTITIONS),
    "TOPIC_REPLICATION_FACTOR": "3",
    "REDELIVER_AFTER": "0",
    "KAFKA_REQUEST_TIMEOUT": "10",
}


class HostPostgres(EmbeddedPostgres):
    """The embedded PostgreSQL on a host of the network, trusting the network's hosts."""

    def __init__(self, host: Host) -> None:
        super().__init__(host=host.address, port=POSTGRES_PORT)
        self.on = host

    def extra_settings(self) -> list[str]:
        return [f"hba_file={self.data_dir / 'hba.conf'}"]

    def start(self, timeout: float = 30.0) -> None:
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        subnet = self.on.address.rsplit(".", 1)[0]
        (self.data_dir / "hba.conf").write_text(
            f"local all all trust\nhost all all {subnet}.0/24 trust\n"
        )
        self._chown(self.data_dir / "hba.conf")
        with self.on.inside():
            super().start(timeout)


class HostCluster:
    """Brokers, PostgreSQL, the API and `workers` workers, each on a host of its own.

    `start()` moves the calling thread onto the `client` host for good (until `stop()`): what
    it connects to afterwards, and the threads it starts, cross the network as a client's
    would. Hosts `worker-1` .. `worker-3` exist from the start; `start_worker` starts a worker
    on one of them (scale-out).
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        settings: dict[str, str] | None = None,
        subnet: str = "10.77.0",
    ) -> None:
        self.initial_workers = workers
        self.subnet = subnet
        self.settings = {**CLUSTER_SETTINGS, **(settings or {})}
        self.network: Network | None = None
        self.kafka: KafkaCluster | None = None
        self.postgres: HostPostgres | None = None
        self.api: Api | None = None
        self.workers: dict[str, Worker] = {}
        self.worker_settings: dict[str, dict[str, str]] = {}  # each worker's own, if any
        self.env: dict[str, str] = {}

    def host(self, name: str) -> Host:
        assert self.network is not None, "the cluster is not started"
        return self.network.hosts[name]

    @property
    def broker_hosts(self) -> list[Host]:
        return [self.host(f"kafka-{node}") for node in range(1, BROKERS + 1)]

    @property
    def api_url(self) -> str:
        assert self.api is not None, "the cluster is not started"
        return self.api.url

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def start(self) -> None:
        """Make the hosts, start every server and process on its own, wait until all serve."""
        self.network = Network(self.subnet)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        assert self.network is not None
        kafka_classpath()  # fetched (once) while this thread still reaches Maven Central
        for name in [f"kafka-{n}" for n in range(1, BROKERS + 1)] + ["postgres", "api"]:
            self.network.add(name)
        for node in range(1, WORKER_HOSTS + 1):
            self.network.add(f"worker-{node}")
        self.network.enter(self.network.add("client"))
        self.kafka = KafkaCluster(size=BROKERS, hosts=self.broker_hosts)
        self.kafka.start()
        self.postgres = HostPostgres(self.host("postgres"))
        self.postgres.start()
        url = self.postgres.create_database(DATABASE)
        migrate.upgrade(url)
        self.env = child_env(
            **self.settings,
            DATABASE_URL=url,
            KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap_servers,
            # Workers listen on their hosts' addresses, so they need their shared token.
            WORKER_WEB_TOKEN=secrets.token_urlsafe(24),
        )
        self.api = Api(self.env, port=API_PORT, on=self.host("api"))
        self.api.start()
        for node in range(1, self.initial_workers + 1):
            self.start_worker(f"worker-{node}", wait=False)
        self.api.wait_ready()
        for worker in self.workers.values():
            worker.wait_ready()

    def start_worker(
        self, host_name: str, *, wait: bool = True, settings: dict[str, str] | None = None
    ) -> Worker:
        """Start (or restart) the worker of `host_name`, with `settings` of its own."""
        env = {**self.env, **(settings or {})}
        worker = Worker(env, on=self.host(host_name))
        worker.start()
        self.workers[host_name] = worker
        self.worker_settings[host_name] = settings or {}
        if wait:
            worker.wait_ready()
        return worker

    def running_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.process and w.process.poll() is None]

    def stop(self) -> None:
        """Stop every process and server, then remove the hosts (also after a failed start)."""
        for process in [self.api, *self.workers.values()]:
            if process is not None:
                with suppress(Exception):
                    process.stop(timeout=15)
        if self.postgres is not None:
            with suppress(Exception):
                self.postgres.close()
        if self.kafka is not None:
            with suppress(Exception):
                self.kafka.remove()
        if self.network is not None:
            self.network.remove()
            self.network = None

    def __enter__(self) -> HostCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


async def forward(listener: socket.socket, target: tuple[str, int]) -> None:
    """Forward every connection `listener` accepts (on this machine's loopback) to `target`,
    until cancelled. Upstream connections are opened from the calling thread, so from the
    client host once the cluster has started."""

    connections: set[asyncio.Task[Any]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(*target), 5)
            except (OSError, TimeoutError):
                writer.close()
                return
            await asyncio.gather(pipe(reader, upstream[1]), pipe(upstream[0], writer))
        finally:
            connections.discard(task)

    server = await asyncio.start_server(serve, sock=listener)
    try:
        await asyncio.Event().wait()  # until Ctrl-C cancels it
    finally:
        # Not serve_forever() nor `async with server`: on the way out both wait for every
        # connection to end (Python 3.12), and a connection still open held Ctrl-C for good.
        server.close()
        for connection in list(connections):
            connection.cancel()


def _loopback_listener(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def describe(cluster: HostCluster, port: int) -> str:
    """What a person needs to use the cluster: addresses, the forward, how to cut a link."""
    assert cluster.api is not None
    assert cluster.network is not None
    client = cluster.host("client").namespace
    lines = [
        "streamapp cluster is up (one host per process, on a bridge):",
        f"  API             {cluster.api.url}  (from this machine: http://127.0.0.1:{port})",
        f"  dashboard       http://127.0.0.1:{port}/dashboard",
    ]
    for name, worker in cluster.workers.items():
        lines.append(f"  {name:<15} {worker.url}/stats/")
    assert cluster.kafka is not None
    lines.append(f"  Kafka           {cluster.kafka.bootstrap_servers}")
    lines.append(f"  PostgreSQL      {cluster.database_url}")
    token = cluster.env["WORKER_WEB_TOKEN"]
    lines += [
        "From the client host:",
        f"  ip netns exec {client} curl {cluster.api.url}/applications",
        f"  ip netns exec {client} curl -H 'Authorization: Bearer {token}' "
        f"{next(iter(cluster.workers.values())).url}/stats/minutes/",
        "Cut a host's link (its peers hang) and heal it:",
        f"  ip -n {cluster.network.switch_namespace} link set <port> down   # then: up",
    ]
    for host in cluster.network.hosts.values():
        lines.append(f"    {host.name:<12} {host.address:<12} port {host.bridge_port}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, choices=range(1, WORKER_HOSTS + 1))
    parser.add_argument("--port", type=int, default=API_PORT, help="loopback port to the API")
    parser.add_argument("--subnet", default="10.77.0", help="the hosts' /24 (default 10.77.0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Bound before the cluster starts: the listener is this machine's, not a host's.
    listener = _loopback_listener(args.port)
    # Ctrl-C (and a TERM) stop the cluster even when started with SIGINT ignored, as a
    # background job of a script is: Python would then leave it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cluster = HostCluster(workers=args.workers, subnet=args.subnet)
    try:
        cluster.start()
        assert cluster.api is not None
        sys.stdout.write(describe(cluster, args.port) + "\n")
        sys.stdout.flush()
        asyncio.run(forward(listener, (cluster.api.address, cluster.api.port)))
    except HostsUnavailable as exc:
        logger.error("cannot make hosts here: %s", exc)
        return 2
    except KeyboardInterrupt:
        logger.info("stopping the cluster")
    finally:
        listener.close()
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
