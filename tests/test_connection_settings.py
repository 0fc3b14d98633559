"""Settings of secured connections: Kafka TLS and SASL, PostgreSQL TLS, secrets from files,
the workers' web token; each mistake one line naming the setting."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from streamapp.config import ConfigError, load_settings
from tools.stack.tls import Certificates

BASE = {"database_url": "postgresql://app:pw@db.example.com:5432/app"}


@pytest.fixture(autouse=True)
def no_stray_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("DATABASE_URL", "POSTGRES_PASSWORD", "WORKER_WEB_BIND", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


def test_plaintext_is_the_default() -> None:
    kafka = load_settings(**BASE).kafka
    assert kafka.client_options() == {
        "bootstrap_servers": "localhost:9092",
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 30_000,
    }
    assert kafka.faust_credentials() is None


def test_sasl_ssl_gives_every_client_the_same_options(certificates: Certificates) -> None:
    settings = load_settings(
        **BASE,
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="scram-sha-512",
        kafka_sasl_username="streamapp",
        kafka_sasl_password="s3cret-password",
        kafka_ssl_cafile=str(certificates.cafile),
    )
    options = settings.kafka.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_password"] == "s3cret-password"
    context = options["ssl_context"]
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert settings.kafka.ssl_context is context  # built once
    credentials = settings.kafka.faust_credentials()
    assert credentials is not None
    assert credentials.protocol.value == "SASL_SSL"
    assert "s3cret-password" not in repr(settings) + repr(settings.kafka) + repr(credentials)


def test_mutual_tls_presents_the_client_certificate(certificates: Certificates) -> None:
    client = certificates.client("streamapp")
    settings = load_settings(
        **BASE,
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(certificates.cafile),
        kafka_ssl_certfile=str(client.certfile),
        kafka_ssl_keyfile=str(client.keyfile),
    )
    credentials = settings.kafka.faust_credentials()
    assert credentials is not None
    assert credentials.protocol.value == "SSL"


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "invalid configuration: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM, "
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_security_protocol": "TLS"}, "invalid setting KAFKA_SECURITY_PROTOCOL: Input"),
        (
            {"kafka_sasl_mechanism": "PLAIN"},
            "KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"},
            "invalid setting KAFKA_SSL_CAFILE: cannot read /nonexistent/ca.pem: No such file",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/etc/hostname"},
            "invalid setting KAFKA_SSL_CAFILE: cannot use /etc/hostname",
        ),
        ({"kafka_ssl_cafile": "/etc/hostname"}, "KAFKA_SSL_CAFILE is set but"),
        ({"postgres_sslmode": "always"}, "invalid setting POSTGRES_SSLMODE: Input"),
        (
            {"postgres_sslrootcert": "/nonexistent/root.crt"},
            "invalid setting POSTGRES_SSLROOTCERT: cannot read /nonexistent/root.crt",
        ),
        (
            {"database_url": "postgresql://a@h/d?sslmode=sometimes"},
            "sslmode=sometimes in DATABASE_URL is not one of libpq's modes",
        ),
        ({"worker_web_bind": "0.0.0.0"}, "WORKER_WEB_BIND=0.0.0.0 reaches beyond this host"),
        ({"worker_web_token": "short"}, "WORKER_WEB_TOKEN must be at least 16 characters"),
        (
            {"postgres_password_file": "/nonexistent/pw"},
            "invalid setting POSTGRES_PASSWORD_FILE: cannot read /nonexistent/pw",
        ),
    ],
)
def test_a_bad_connection_setting_is_one_line(changes: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(**{**BASE, **changes})
    assert line in str(raised.value)
    assert "\n" not in str(raised.value)


def test_secrets_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    (tmp_path / "url").write_text("postgresql://app:url-secret@db/app\n")
    monkeypatch.setenv("DATABASE_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "pw"))
    settings = load_settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
    )
    assert settings.kafka.sasl_password == "from-a-file"
    assert settings.asyncpg_dsn == "postgresql://app:url-secret@db/app"
    assert "url-secret" not in repr(settings)


def test_a_secret_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("x")
    monkeypatch.setenv("POSTGRES_PASSWORD_FILE", str(tmp_path / "pw"))
    with pytest.raises(ConfigError, match="set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE"):
        load_settings(postgres_user="u", postgres_password="y", postgres_db="d")


def test_postgres_tls_settings_join_the_dsn_where_the_url_has_none() -> None:
    settings = load_settings(
        database_url="postgresql://app:pw@db/app?sslmode=require",
        postgres_sslmode="verify-full",
        postgres_sslrootcert="/etc/hostname",
    )
    assert settings.asyncpg_dsn == (
        "postgresql://app:pw@db/app?sslmode=require&sslrootcert=%2Fetc%2Fhostname"
    )
    assert settings.postgres_tls == {"sslmode": "require", "sslrootcert": "/etc/hostname"}


def test_empty_values_are_unset_as_compose_passes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_SASL_MECHANISM", "KAFKA_SSL_CAFILE", "POSTGRES_SSLROOTCERT"):
        monkeypatch.setenv(name, "")
    settings = load_settings(**BASE)
    assert settings.kafka_sasl_mechanism is None
    assert settings.kafka_ssl_cafile is None


def test_a_token_lets_the_web_port_off_loopback() -> None:
    settings = load_settings(
        **BASE, worker_web_bind="0.0.0.0", worker_web_token="a-long-enough-token"
    )
    assert settings.worker_web_token is not None
    assert "a-long-enough-token" not in repr(settings)


def test_every_kafka_client_waits_at_most_the_request_timeout() -> None:
    settings = load_settings(
        **BASE,
        kafka_request_timeout="7.5",
        worker_rebalance_timeout="60",
        worker_session_timeout="60",
    )
    assert settings.kafka.client_options()["request_timeout_ms"] == 7_500
    # The workers' consumer also waits out a group join (the rebalance timeout) and its
    # session, whichever is longest.
    assert settings.consumer_request_timeout == 65.0
    short = load_settings(
        **BASE,
        kafka_request_timeout="7.5",
        worker_rebalance_timeout="1",
        worker_session_timeout="2",
    )
    assert short.consumer_request_timeout == 7.5
