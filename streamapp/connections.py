"""How the service reaches Kafka and PostgreSQL: addresses, TLS and credentials, in one place.

Every Kafka client the project opens (the workers' Faust app, the API's producer, the topic
check, the lag reader, the dead-letter tool, `streamapp generate`, the benchmarks' and tests'
clients) takes its options from one `KafkaConnection`, whose SSL context is built once.

PostgreSQL's TLS settings travel inside the DSN as libpq's own parameters (`sslmode`,
`sslrootcert`, `sslcert`, `sslkey`), which asyncpg reads the way libpq does; so the API's pool,
the worker's pool, the LISTEN connection, Alembic and the tools all honour them alike.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import faust

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
POSTGRES_TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


class TlsFileError(ValueError):
    """A certificate or key file cannot be used: `which` is "cafile" or "certfile"."""

    def __init__(self, which: str, message: str) -> None:
        super().__init__(message)
        self.which = which


def client_ssl_context(
    *,
    cafile: str | None,
    certfile: str | None,
    keyfile: str | None,
    key_password: str | None,
    check_hostname: bool,
) -> ssl.SSLContext:
    """A client context that verifies the server against `cafile` (else the system's CAs)
    and, given a certificate, presents it (mutual TLS)."""
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError("cafile", f"cannot use {cafile}: {_reason(exc)}") from None
    context.check_hostname = check_hostname
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile, key_password)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError("certfile", f"cannot use {certfile}: {_reason(exc)}") from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    # Seconds any request may wait for its answer: a broker cut off hangs, it never refuses.
    request_timeout: float = 30.0

    @classmethod
    def of(cls, target: KafkaConnection | str) -> KafkaConnection:
        """A connection as given, or plaintext to the bootstrap servers in a string."""
        return target if isinstance(target, KafkaConnection) else cls(target)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": int(self.request_timeout * 1000),
        }
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def faust_credentials(self) -> faust.types.auth.CredentialsT | None:
        """The same, as Faust's `broker_credentials` (None for plaintext)."""
        if self.sasl_mechanism is not None:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context,
            )
        if self.ssl_context is not None:
            return faust.SSLCredentials(self.ssl_context)
        return None


def with_postgres_tls(dsn: str, parameters: dict[str, str]) -> str:
    """The DSN with TLS parameters added where it has none of its own (the DSN's win)."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in parameters.items():
        query.setdefault(name, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def postgres_tls_of(dsn: str) -> dict[str, str]:
    """The TLS parameters a DSN carries."""
    query = dict(parse_qsl(urlsplit(dsn).query, keep_blank_values=True))
    return {name: query[name] for name in POSTGRES_TLS_PARAMETERS if name in query}
