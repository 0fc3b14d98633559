"""The whole pipeline over secured connections, made by the test: Apache Kafka over SASL_SSL
(SCRAM-SHA-512 and PLAIN) and over mutual TLS, PostgreSQL requiring TLS with `verify-full`
and a client certificate; then each way a secured connection can be misconfigured."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from streamapp.stream.acls import REQUIRED
from streamapp.stream.topics import NEW_APPLICATIONS
from tests.harness.effects import user_count
from tests.harness.settings import TEST_SETTINGS
from tools.stack.kafka import ApacheKafka, SecureListeners
from tools.stack.postgres_tls import TlsPostgres, debian_postgres_bin
from tools.stack.processes import STREAMAPP, api_and_worker, child_env, free_ports, wait_for
from tools.stack.tls import Certificates, other_ca

pytestmark = pytest.mark.skipif(
    debian_postgres_bin() is None,
    reason="PostgreSQL with SSL needs Debian's postgresql package (apt-get install postgresql)",
)

USER = "streamapp"
SASL_PASSWORD = "sasl-Pw-7Hq2Lm9Xr4vB"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_kafka(certificates: Certificates) -> Iterator[ApacheKafka]:
    broker = ApacheKafka(secure=SecureListeners(certificates, {USER: SASL_PASSWORD}))
    broker.start()
    try:
        yield broker
    finally:
        broker.remove()


@pytest.fixture(scope="module")
def tls_postgres(certificates: Certificates) -> Iterator[TlsPostgres]:
    bin_dir = debian_postgres_bin()
    assert bin_dir is not None
    server = TlsPostgres(certificates, bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.close()


def kafka_settings(
    mode: str, kafka: ApacheKafka, certificates: Certificates, secrets: Path
) -> dict[str, str]:
    """The environment a user sets for each way of reaching the broker securely."""
    assert kafka.secure is not None
    if mode == "mtls":
        client = certificates.client(USER)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{kafka.secure.ssl_port}",
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": str(certificates.cafile),
            "KAFKA_SSL_CERTFILE": str(client.certfile),
            "KAFKA_SSL_KEYFILE": str(client.keyfile),
        }
    password_file = secrets / "kafka-password"
    password_file.write_text(f"{SASL_PASSWORD}\n")
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{kafka.secure.sasl_ssl_port}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": mode,
        "KAFKA_SASL_USERNAME": USER,
        "KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "KAFKA_SSL_CAFILE": str(certificates.cafile),
    }


def postgres_settings(postgres: TlsPostgres, database: str, *, in_url: bool) -> dict[str, str]:
    """verify-full with the client certificate: in DATABASE_URL, or as POSTGRES_SSL*."""
    url = postgres.create_app_database(database)
    if in_url:
        return {"DATABASE_URL": postgres.verify_full(url)}
    return {
        "DATABASE_URL": url,
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": str(postgres.certificates.cafile),
        "POSTGRES_SSLCERT": str(postgres.client.certfile),
        "POSTGRES_SSLKEY": str(postgres.client.keyfile),
    }


def streamapp(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STREAMAPP, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def status_of(dsn: str, application_id: int) -> str | None:
    async def read() -> str | None:
        connection = await asyncpg.connect(dsn)
        try:
            status: str | None = await connection.fetchval(
                "SELECT status FROM applications WHERE id = $1", application_id
            )
            return status
        finally:
            await connection.close()

    return asyncio.run(read())


def run_the_pipeline(kafka: dict[str, str], postgres: TlsPostgres, *, tls_in_url: bool) -> None:
    """On a new database: migrate, POST, then see it processed in PostgreSQL, counted in the
    table view and answered by ?wait= (the LISTEN connection); no secret in the logs."""
    database = f"secure_{uuid.uuid4().hex[:8]}"
    env = child_env(
        **TEST_SETTINGS, **kafka, **postgres_settings(postgres, database, in_url=tls_in_url)
    )
    migrated = streamapp(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    dsn = postgres.verify_full(f"postgresql://{USER}@localhost:{postgres.port}/{database}")
    user_name = f"secure-{uuid.uuid4().hex[:8]}"

    with api_and_worker(env) as (api, worker):
        response = httpx.post(
            f"{api.url}/applications",
            json={"user_name": user_name, "description": "over TLS"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        application_id = response.json()["id"]

        wait_for(lambda: status_of(dsn, application_id) == "processed", timeout=60)
        wait_for(lambda: user_count(worker, user_name) == 1, timeout=30)
        waited = httpx.get(
            f"{api.url}/applications/{application_id}", params={"wait": "5"}, timeout=30
        )
        assert waited.json()["status"] == "processed"
        metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
        metrics += httpx.get(f"{worker.url}/metrics/", timeout=10).text
    assert SASL_PASSWORD not in api.log() + worker.log() + metrics


@pytest.mark.parametrize(
    ("kafka_mode", "tls_in_url"),
    [("SCRAM-SHA-512", True), ("PLAIN", False), ("mtls", False)],
)
def test_the_pipeline_runs_over_secured_kafka_and_postgres(
    secure_kafka: ApacheKafka,
    tls_postgres: TlsPostgres,
    certificates: Certificates,
    tmp_path: Path,
    kafka_mode: str,
    tls_in_url: bool,
) -> None:
    kafka = kafka_settings(kafka_mode, secure_kafka, certificates, tmp_path)
    run_the_pipeline(kafka, tls_postgres, tls_in_url=tls_in_url)


@pytest.fixture(scope="module")
def secured_env(
    secure_kafka: ApacheKafka,
    tls_postgres: TlsPostgres,
    certificates: Certificates,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Settings that work (SCRAM-SHA-512 over TLS, verify-full), on a migrated database."""
    secrets = tmp_path_factory.mktemp("secrets")
    env = child_env(
        **TEST_SETTINGS,
        **kafka_settings("SCRAM-SHA-512", secure_kafka, certificates, secrets),
        **postgres_settings(tls_postgres, "secure_refusals", in_url=True),
    )
    migrated = streamapp(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    return env


def refusal_cases(
    kafka: ApacheKafka, postgres: TlsPostgres, certs: Certificates
) -> dict[str, tuple[str, dict[str, str | None], str]]:
    """Case name -> (command, setting changes (None removes one), the line's words)."""
    assert kafka.secure is not None
    sasl_ssl, mtls = kafka.secure.sasl_ssl_port, kafka.secure.ssl_port
    plain_kafka = {"KAFKA_SASL_MECHANISM": None, "KAFKA_SASL_USERNAME": None}
    plain_kafka |= {"KAFKA_SASL_PASSWORD_FILE": None, "KAFKA_SSL_CAFILE": None}
    database = postgres.create_app_database("secure_refusals")
    other = str(other_ca(certs.directory))
    return {
        "wrong SASL password": (
            "worker",
            {"KAFKA_SASL_PASSWORD_FILE": None, "KAFKA_SASL_PASSWORD": WRONG_PASSWORD},
            "refused the SCRAM-SHA-512 login of 'streamapp': check KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD",
        ),
        "unknown mechanism": (
            "worker",
            {"KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"},
            "invalid setting KAFKA_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256' or "
            "'SCRAM-SHA-512'",
        ),
        "broker certificate from another CA": (
            "worker",
            {"KAFKA_SSL_CAFILE": other},
            "is not one KAFKA_SSL_CAFILE vouches for",
        ),
        "broker reached by a name not in its certificate": (
            "worker",
            {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{sasl_ssl}"},
            "is not valid for the name used",
        ),
        "missing certificate file": (
            "worker",
            {"KAFKA_SSL_CERTFILE": "/nonexistent/client.crt"},
            "invalid setting KAFKA_SSL_CERTFILE: cannot read /nonexistent/client.crt",
        ),
        "plaintext against a TLS port": (
            "worker",
            {**plain_kafka, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"},
            "speaks TLS: set KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL",
        ),
        "TLS against a plaintext port": (
            "worker",
            {"KAFKA_BOOTSTRAP_SERVERS": f"localhost:{kafka.port}"},
            "does not speak TLS: set KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        "mutual TLS without a client certificate": (
            "worker",
            {
                **plain_kafka,
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CAFILE": str(certs.cafile),
                "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{mtls}",
            },
            "requires a client certificate it accepts: set KAFKA_SSL_CERTFILE and "
            "KAFKA_SSL_KEYFILE",
        ),
        "the API with a wrong SASL password": (
            "api",
            {"KAFKA_SASL_PASSWORD_FILE": None, "KAFKA_SASL_PASSWORD": WRONG_PASSWORD},
            "refused the SCRAM-SHA-512 login",
        ),
        "PostgreSQL refusing plaintext": (
            "migrate",
            {"DATABASE_URL": f"{database}?sslmode=disable"},
            "refuses connections without TLS: set POSTGRES_SSLMODE=verify-full",
        ),
        "PostgreSQL without a client certificate": (
            "worker",
            {
                "DATABASE_URL": database,
                "POSTGRES_SSLMODE": "verify-full",
                "POSTGRES_SSLROOTCERT": str(certs.cafile),
            },
            "refused the client certificate",
        ),
        "PostgreSQL certificate from another CA": (
            "api",
            {
                "DATABASE_URL": postgres.verify_full(database).replace(
                    quote_path(certs.cafile), quote_path(Path(other))
                )
            },
            "is not one POSTGRES_SSLROOTCERT vouches for",
        ),
    }


WRONG_PASSWORD = "wrong-Pw-3Jd8Ks1Qz6"
REFUSALS = [
    "wrong SASL password",
    "unknown mechanism",
    "broker certificate from another CA",
    "broker reached by a name not in its certificate",
    "missing certificate file",
    "plaintext against a TLS port",
    "TLS against a plaintext port",
    "mutual TLS without a client certificate",
    "the API with a wrong SASL password",
    "PostgreSQL refusing plaintext",
    "PostgreSQL without a client certificate",
    "PostgreSQL certificate from another CA",
]


def quote_path(path: Path) -> str:
    return quote(str(path), safe="")


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_connection_stops_the_start_with_one_line(
    case: str,
    secured_env: dict[str, str],
    secure_kafka: ApacheKafka,
    tls_postgres: TlsPostgres,
    certificates: Certificates,
) -> None:
    command, changes, words = refusal_cases(secure_kafka, tls_postgres, certificates)[case]
    env = {k: v for k, v in secured_env.items() if changes.get(k, "") is not None}
    env |= {k: v for k, v in changes.items() if v is not None}
    args = [command, "--port", str(free_ports(1))] if command == "api" else [command]

    result = streamapp(env, *args, timeout=90)

    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("streamapp: "), result.stderr[-3000:]
    assert words in last
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert WRONG_PASSWORD not in output
    assert SASL_PASSWORD not in output


@pytest.fixture(scope="module")
def authorizing_kafka(certificates: Certificates) -> Iterator[ApacheKafka]:
    """A broker that lets the service's user do only what REQUIRED grants it."""
    listeners = SecureListeners(certificates, {USER: SASL_PASSWORD}, authorizer=True)
    broker = ApacheKafka(secure=listeners)
    broker.start()
    try:
        for acl in REQUIRED:
            broker.acls("--add", *acl.arguments(f"User:{USER}"))
        yield broker
    finally:
        broker.remove()


def test_the_pipeline_runs_with_only_the_documented_acls(
    authorizing_kafka: ApacheKafka,
    tls_postgres: TlsPostgres,
    certificates: Certificates,
    tmp_path: Path,
) -> None:
    kafka = kafka_settings("SCRAM-SHA-512", authorizing_kafka, certificates, tmp_path)
    run_the_pipeline(kafka, tls_postgres, tls_in_url=True)


def test_a_missing_acl_is_named(
    authorizing_kafka: ApacheKafka, certificates: Certificates, tmp_path: Path
) -> None:
    # Without it the topic is invisible to the worker, which then may not create it either.
    topic = next(acl for acl in REQUIRED if acl.name == NEW_APPLICATIONS)
    authorizing_kafka.acls("--remove", *topic.arguments(f"User:{USER}"))
    try:
        env = child_env(
            **TEST_SETTINGS,
            **kafka_settings("SCRAM-SHA-512", authorizing_kafka, certificates, tmp_path),
            DATABASE_URL="postgresql://nobody@localhost:1/none",
        )
        result = streamapp(env, "worker", timeout=90)
    finally:
        authorizing_kafka.acls("--add", *topic.arguments(f"User:{USER}"))

    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert f"Kafka denies User:{USER}" in last, last
    assert f"cannot create topic {NEW_APPLICATIONS}" in last
    assert "TopicAuthorizationFailed" in last
