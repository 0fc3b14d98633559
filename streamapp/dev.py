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
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from streamapp import schema
from streamapp.embedded.broker import EmbeddedBroker
from streamapp.embedded.postgres import EmbeddedPostgres
from streamapp.embedded.process import ServiceStartError, port_is_open, stop_process, wait_until

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
}
READY_TIMEOUT = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument(
        "--worker-port", type=int, default=6066, help="first worker's web port; the next +1..."
    )
    parser.add_argument("--postgres-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--broker-port", type=int, default=0, help="0: a free port")
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="keep PostgreSQL data here between runs (default: a temporary directory)",
    )  # fmt: skip


@dataclass
class Child:
    """A supervised process and the prefix of its output lines."""

    name: str
    process: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    pump: threading.Thread | None = field(default=None, repr=False)


class Stack:
    """Starts children, streams their output, and stops them in reverse order."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._output_lock = threading.Lock()

    def spawn(
        self, name: str, command: list[str], env: dict[str, str], stop_signal: int = signal.SIGTERM
    ) -> Child:
        # Own session: Ctrl-C reaches only the supervisor, which then stops children in order.
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        child = Child(name, process, stop_signal)
        assert process.stdout is not None
        child.pump = threading.Thread(
            target=self._stream, args=(name, process.stdout), daemon=True, name=f"out-{name}"
        )
        child.pump.start()
        self.children.append(child)
        return child

    def _stream(self, name: str, output: IO[bytes]) -> None:
        width = max(8, len(name))
        for line in iter(output.readline, b""):
            with self._output_lock:
                sys.stdout.write(f"{name:<{width}} | {line.decode(errors='replace')}")
                sys.stdout.flush()

    def first_dead(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_all(self) -> None:
        """Stop the API first (no new work), then the workers together, then the broker."""
        api = [c for c in self.children if c.name == "api"]
        broker = [c for c in self.children if c.name == "broker"]
        workers = [c for c in self.children if c not in api and c not in broker]
        for group in (api, workers, broker):
            self._stop(group)
        self.children.clear()

    def _stop(self, children: list[Child]) -> None:
        running = [c for c in children if c.process.poll() is None]
        if running:
            logger.info("stopping %s", ", ".join(c.name for c in running))
        for child in running:
            with suppress(ProcessLookupError):
                child.process.send_signal(child.stop_signal)
        for child in children:
            stop_process(child.process, sig=child.stop_signal, timeout=20)
            _kill_group(child.process.pid)
            if child.pump is not None:
                child.pump.join(timeout=5)


def _kill_group(pid: int) -> None:
    """Kill whatever the child's process group still holds (it was the group leader)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived while the stack was still starting."""


class Supervisor:
    """Turns SIGINT/SIGTERM into an orderly stop, at any point of the run."""

    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.starting = True
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_requested.set()
        if self.starting:
            raise StopRequested()

    def watch(self, stack: Stack) -> int:
        """Wait for a stop request (0) or a child that died (1)."""
        self.starting = False
        while not self.stop_requested.wait(0.5):
            dead = stack.first_dead()
            if dead is not None:
                logger.error(
                    "%s exited with code %s; stopping everything (its output is above)",
                    dead.name, dead.process.returncode,
                )  # fmt: skip
                return 1
        return 0


def run(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C/SIGTERM (exit 0) or until a child dies (exit 1)."""
    supervisor = Supervisor()
    stack = Stack()
    postgres: EmbeddedPostgres | None = None
    try:
        _check_ports_free(args, _local_host(args))
        database_url = _configured("DATABASE_URL")
        if not database_url:
            postgres = _start_postgres(args)
            database_url = postgres.create_database(DATABASE_NAME)
        env = {**os.environ, **DEV_SETTINGS, "DATABASE_URL": database_url}
        env["KAFKA_BOOTSTRAP_SERVERS"] = _configured("KAFKA_BOOTSTRAP_SERVERS") or _start_broker(
            args, stack, env
        )
        logger.info("applying migrations")
        schema.upgrade(database_url)
        _start_app(args, stack, env)
        return supervisor.watch(stack)
    except StopRequested:
        return 0
    except ServiceStartError as exc:
        logger.error("could not start: %s", exc)
        return 1
    finally:
        supervisor.starting = False  # a second Ctrl-C must not interrupt the shutdown
        stack.stop_all()
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


def _start_broker(args: argparse.Namespace, stack: Stack, env: dict[str, str]) -> str:
    broker = EmbeddedBroker(host="127.0.0.1", port=args.broker_port or None)
    child = stack.spawn("broker", broker.command(), env)
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


def _start_app(args: argparse.Namespace, stack: Stack, env: dict[str, str]) -> None:
    host = _local_host(args)
    python = [sys.executable, "-m", "streamapp"]
    api = stack.spawn(
        "api", [*python, "api", "--host", args.host, "--port", str(args.api_port)], env
    )
    workers = []
    for index in range(args.workers):
        port = args.worker_port + index
        worker_env = {
            **env,
            "WORKER_WEB_HOST": args.host,
            "WORKER_DATA_DIR": tempfile.mkdtemp(prefix=f"streamapp-worker-{port}-"),
        }
        name = f"worker-{index + 1}"
        workers.append(
            (stack.spawn(name, [*python, "worker", "--web-port", str(port)], worker_env), port)
        )
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
