"""`streamapp dev`: the whole system on one machine, from nothing but this package.

Embedded PostgreSQL and the tansu broker (unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS name
real ones), migrations, then the API and N workers as separate processes. Each child's output
is streamed with a prefix. Ctrl-C or SIGTERM stops everything in order; if a child dies, the
rest are stopped and the exit code says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from typing import Any

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from streamapp import migrate
from streamapp.dev.broker import EmbeddedBroker
from streamapp.dev.postgres import EmbeddedPostgres
from streamapp.dev.processes import ServiceStartError, port_is_open, wait_until
from streamapp.dev.supervisor import Child, StopRequested, Supervisor

logger = logging.getLogger(__name__)

DATABASE_NAME = "streamapp"
# A dev worker joins the group in seconds instead of waiting out Faust's default timeouts.
DEV_SETTINGS = {
    "WORKER_REBALANCE_TIMEOUT": "5",
    "WORKER_SESSION_TIMEOUT": "6",
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "OUTBOX_RELAY_DELAY": "2",
    "OUTBOX_MAX_BACKOFF": "5",
    "REDELIVER_AFTER": "20",
    "API_DRAIN_SECONDS": "0",  # one API and no load balancer: nothing to drain for
    "PRODUCER_IDEMPOTENCE": "false",  # the embedded broker (tansu) has no producer ids
}
READY_TIMEOUT = 120.0
# The API stops first (no new work), then the workers together, then the broker.
STOP_FIRST, STOP_NEXT, STOP_LAST = 0, 1, 2


def run(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C/SIGTERM (exit 0) or until a child dies (exit 1)."""
    supervisor = Supervisor()
    postgres: EmbeddedPostgres | None = None
    try:
        _check_ports_free(args, _local_host(args))
        database_url = _configured("DATABASE_URL")
        if not database_url:
            postgres = _start_postgres(args)
            database_url = postgres.create_database(DATABASE_NAME)
        env = {**os.environ, **DEV_SETTINGS, "DATABASE_URL": database_url}
        brokers = _configured("KAFKA_BOOTSTRAP_SERVERS") or _start_broker(args, supervisor, env)
        env["KAFKA_BOOTSTRAP_SERVERS"] = brokers
        logger.info("applying migrations")
        migrate.upgrade(database_url)
        _start_app(args, supervisor, env)
        return supervisor.watch()
    except StopRequested:
        return 0
    except ServiceStartError as exc:
        logger.error("could not start: %s", exc)
        return 1
    finally:
        supervisor.stop_all()
        if postgres is not None:
            logger.info("stopping PostgreSQL")
            postgres.close()


def _configured(name: str) -> str | None:
    """Return a setting from the environment or .env, as the children would read it."""
    return os.environ.get(name) or dotenv_values(".env").get(name) or None


def _start_postgres(args: argparse.Namespace) -> EmbeddedPostgres:
    data_dir = args.data_dir.resolve() / "postgres" if args.data_dir else None
    server = EmbeddedPostgres(data_dir, port=args.postgres_port or None, durable=bool(data_dir))
    server.start()
    return server


def _start_broker(args: argparse.Namespace, supervisor: Supervisor, env: dict[str, str]) -> str:
    broker = EmbeddedBroker(host="127.0.0.1", port=args.broker_port or None)
    child = supervisor.spawn("broker", broker.command(), env, stop_order=STOP_LAST)
    broker.wait_ready(child.process)
    return broker.bootstrap_servers


def _local_host(args: argparse.Namespace) -> str:
    return "127.0.0.1" if args.host in ("0.0.0.0", "::") else str(args.host)


def _check_ports_free(args: argparse.Namespace, host: str) -> None:
    wanted = [("--api-port", args.api_port)]
    wanted += [("--worker-port", args.worker_port + i) for i in range(args.workers)]
    for option, port in wanted:
        if port_is_open(host, port):
            raise ServiceStartError(f"port {port} is already in use (choose another with {option})")


def _start_app(args: argparse.Namespace, supervisor: Supervisor, env: dict[str, str]) -> None:
    host = _local_host(args)
    python = [sys.executable, "-m", "streamapp"]
    api_command = [*python, "api", "--host", args.host, "--port", str(args.api_port)]
    api = supervisor.spawn("api", api_command, env, stop_order=STOP_FIRST)
    workers = []
    for index in range(args.workers):
        port = args.worker_port + index
        worker_env = {
            **env,
            "WORKER_WEB_HOST": args.host,
            "WORKER_WEB_BIND": args.host,
            "WORKER_DATA_DIR": tempfile.mkdtemp(prefix=f"streamapp-worker-{port}-"),
        }
        command = [*python, "worker", "--web-port", str(port)]
        child = supervisor.spawn(f"worker-{index + 1}", command, worker_env, stop_order=STOP_NEXT)
        workers.append((child, port))
    _wait_until(api, f"http://{host}:{args.api_port}/healthz", lambda _: True)
    for child, port in workers:
        # Ready means in the consumer group: it holds partitions (its own or standby ones).
        _wait_until(child, f"http://{host}:{port}/stats/", lambda stats: bool(stats["assignment"]))
    _announce(args, host, env)


def _wait_until(child: Child, url: str, ready: Callable[[Any], bool]) -> None:
    """Wait until `url` answers with JSON for which `ready` is true."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
                return ready(json.loads(response.read()))
        except (OSError, ValueError, KeyError):
            return False

    wait_until(answers, process=child.process, timeout=READY_TIMEOUT, what=child.name)


def _announce(args: argparse.Namespace, host: str, env: dict[str, str]) -> None:
    lines = [
        "streamapp is up:",
        f"  API             http://{host}:{args.api_port}  (docs: http://{host}:{args.api_port}/docs)",
        f"  dashboard       http://{host}:{args.api_port}/dashboard",
    ]
    for index in range(args.workers):
        url = f"http://{host}:{args.worker_port + index}"
        lines.append(f"  worker {index + 1:<8} {url}/stats/  (tables: {url}/table/)")
    lines += [
        f"  PostgreSQL      {_hide_password(env['DATABASE_URL'])}",
        f"  Kafka           {env['KAFKA_BOOTSTRAP_SERVERS']}",
        "Press Ctrl-C to stop.",
    ]
    logger.info("\n".join(lines))


def _hide_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
