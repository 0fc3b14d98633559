"""Settings: one class, read from the environment and a `.env` in the working directory."""

from __future__ import annotations

import functools
import ipaddress
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from streamapp.connections import (
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
    SslMode,
    TlsFileError,
    client_ssl_context,
    postgres_tls_of,
    with_postgres_tls,
)
from streamapp.logs import LogFormat

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# Seconds a group join may take beyond the rebalance timeout it waits out (as Kafka's own
# Java consumer allows).
JOIN_MARGIN = 5.0
Duration = Annotated[float, Field(gt=0)]
NonNegativeDuration = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
REQUIRED_WITHOUT_DATABASE_URL = ("postgres_user", "postgres_password", "postgres_db")


API_KEY_MIN = 16
WORKER_WEB_TOKEN_MIN = 16
# Secrets that may also come from a file named by NAME_FILE (Docker and Kubernetes secrets).
SECRETS = (
    "postgres_password",
    "database_url",
    "kafka_sasl_password",
    "kafka_ssl_key_password",
    "api_keys",
    "worker_web_token",
)
_ORIGIN = re.compile(r"https?://[^/\s:]+(:[0-9]{1,5})?")


def _split(text: str) -> tuple[str, ...]:
    """The items of a comma-separated setting, blanks dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


class Settings(BaseSettings):
    """Every setting of the service; names match the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    postgres_user: str | None = None
    postgres_password: SecretStr | None = None
    postgres_db: str | None = None
    postgres_host: str = "localhost"
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    database_url: SecretStr | None = None
    # Declared before the minimum, which is checked against it.
    db_pool_max_size: Count = 10
    db_pool_min_size: Count = 2
    db_command_timeout: Duration = 10.0
    db_connect_timeout: Duration = 5.0
    # The API's longest wait for a free pooled connection before it answers 503.
    db_pool_timeout: Duration = 2.0

    postgres_sslmode: SslMode | None = None
    postgres_sslrootcert: str | None = None
    postgres_sslcert: str | None = None
    postgres_sslkey: str | None = None

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    kafka_request_timeout: Duration = 30.0
    # The original service's name for the consumer's broker; accepted and not used.
    host_consumer: str | None = None
    topic_partitions: Count = 8
    topic_replication_factor: Count = 1
    topic_min_insync_replicas: Count | None = None
    producer_idempotence: bool = True
    worker_batch_size: Count = 1000
    worker_batch_wait: Duration = 0.005
    worker_rebalance_timeout: Duration = 60.0
    worker_session_timeout: Duration = 60.0
    worker_heartbeat_interval: Duration = 3.0
    worker_data_dir: str = ".streamapp-data"
    worker_web_host: str | None = None
    worker_web_bind: str = "127.0.0.1"
    worker_web_token: SecretStr | None = None
    # Kafka static membership (group.instance.id): a worker restarted under the same id
    # within the session timeout gets its partitions back with no group-wide rebalance.
    worker_instance_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")] | None = None

    outbox_relay_interval: Duration = 1.0
    outbox_relay_delay: NonNegativeDuration = 5.0
    outbox_relay_batch_size: Count = 500
    outbox_max_backoff: Duration = 30.0
    outbox_retention_hours: NonNegativeDuration = 24.0
    redeliver_after: NonNegativeDuration = 60.0
    publish_timeout: Duration = 10.0

    max_body_bytes: int = Field(default=16 * 1024, ge=256)
    api_request_timeout: Duration = 10.0
    # Requests served at once (0: no limit), and the longest wait for a turn before a 503.
    api_max_concurrency: int = Field(default=64, ge=0)
    api_queue_timeout: Duration = 0.5
    api_drain_seconds: NonNegativeDuration = 5.0
    api_shutdown_timeout: Count = 30
    api_keys: SecretStr | None = None
    cors_origins: str | None = None
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"

    # NAME_FILE: the file holding the secret NAME (read in _read_secret_files).
    postgres_password_file: str | None = None
    database_url_file: str | None = None
    kafka_sasl_password_file: str | None = None
    kafka_ssl_key_password_file: str | None = None
    api_keys_file: str | None = None
    worker_web_token_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_log_settings(cls, data: object) -> object:
        if isinstance(data, dict):
            # Compose passes an unset variable as empty: empty is unset.
            for key in [k for k, v in data.items() if v == "" and k.lower() in _EMPTY_IS_UNSET]:
                del data[key]
            for name in ("log_level", "kafka_security_protocol", "kafka_sasl_mechanism"):
                for key in (name, name.upper()):
                    if isinstance(data.get(key), str):
                        data[key] = data[key].strip().upper()
            for name in ("log_format", "postgres_sslmode"):
                for key in (name, name.upper()):
                    if isinstance(data.get(key), str):
                        data[key] = data[key].strip().lower()
        return data

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: object) -> object:
        """NAME_FILE names a file holding NAME (its trailing newline dropped)."""
        if not isinstance(data, dict):
            return data
        for name in SECRETS:
            path = _pop_either(data, f"{name}_file")
            if not path:
                continue
            if _get_either(data, name):
                raise ValueError(f"set {name.upper()} or {name.upper()}_FILE, not both")
            try:
                data[name] = Path(path).read_text().removesuffix("\n")
            except OSError as exc:
                raise ValueError(
                    f"invalid setting {name.upper()}_FILE: cannot read {path}: "
                    f"{exc.strerror or exc}"
                ) from None
        return data

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                make_url(value.get_secret_value())
            except Exception as exc:
                raise ValueError(f"not a database URL: {exc}") from None
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # empty is unset, as compose passes an unset variable
        keys = _split(value.get_secret_value())
        if not keys:
            raise ValueError("no key in it (unset it to turn keys off)")
        if any(len(key) < API_KEY_MIN for key in keys):
            raise ValueError(f"every key must be at least {API_KEY_MIN} characters")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str | None) -> str | None:
        for origin in _split(value or ""):
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin such as https://example.com")
        return value

    @field_validator("topic_min_insync_replicas")
    @classmethod
    def _check_min_insync(cls, value: int | None, info: ValidationInfo) -> int | None:
        replication = info.data.get("topic_replication_factor")
        if value is not None and replication is not None and value > replication:
            raise ValueError(f"must not be larger than TOPIC_REPLICATION_FACTOR ({replication})")
        return value

    @field_validator("db_pool_min_size")
    @classmethod
    def _check_pool_sizes(cls, value: int, info: ValidationInfo) -> int:
        maximum = info.data.get("db_pool_max_size")
        if maximum is not None and value > maximum:
            raise ValueError(f"must not be larger than DB_POOL_MAX_SIZE ({maximum})")
        return value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_"):
            missing = [
                name
                for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
                if not getattr(self, name)
            ]
            if missing:
                names = ", ".join(name.upper() for name in missing)
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {names}")
        elif self.kafka_sasl_mechanism:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL is {protocol}"
                " (SASL_SSL or SASL_PLAINTEXT use it)"
            )
        if not protocol.endswith("SSL"):
            given = [name for name in _KAFKA_TLS_FILES if getattr(self, name)]
            if given:
                raise ValueError(
                    f"{given[0].upper()} is set but KAFKA_SECURITY_PROTOCOL is {protocol}"
                    " (SSL or SASL_SSL use it)"
                )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE")
        for name in _KAFKA_TLS_FILES:
            _check_readable(name, getattr(self, name))
        _ = self.kafka  # builds the SSL context now, so a bad file stops the start
        return self

    @model_validator(mode="after")
    def _check_postgres_tls(self) -> Settings:
        for name, value in self.postgres_tls.items():
            if name != "sslmode":
                _check_readable(f"postgres_{name}", value)
        mode = self.postgres_tls.get("sslmode")
        if mode is not None and mode not in get_args(SslMode):
            raise ValueError(f"sslmode={mode} in DATABASE_URL is not one of libpq's modes")
        return self

    @model_validator(mode="after")
    def _check_worker_web_token(self) -> Settings:
        token = self.worker_web_token.get_secret_value() if self.worker_web_token else ""
        if token and len(token) < WORKER_WEB_TOKEN_MIN:
            raise ValueError(f"WORKER_WEB_TOKEN must be at least {WORKER_WEB_TOKEN_MIN} characters")
        if not token and not _is_loopback(self.worker_web_bind):
            raise ValueError(
                f"WORKER_WEB_BIND={self.worker_web_bind} reaches beyond this host: set "
                "WORKER_WEB_TOKEN, the secret workers and the API present to each other"
            )
        return self

    @model_validator(mode="after")
    def _require_database(self) -> Settings:
        if self.database_url:
            return self
        missing = [name for name in REQUIRED_WITHOUT_DATABASE_URL if not getattr(self, name)]
        if missing:
            names = ", ".join(name.upper() for name in missing)
            raise ValueError(f"missing setting {names} (or set DATABASE_URL)")
        return self

    @property
    def sqlalchemy_url(self) -> URL:
        """Return the database URL with the asyncpg driver (for Alembic and SQLAlchemy)."""
        if self.database_url:
            raw = self.database_url.get_secret_value()
            url = make_url(raw.replace("postgres://", "postgresql://", 1))
            return url.set(drivername="postgresql+asyncpg")
        assert self.postgres_password is not None
        return URL.create(
            "postgresql+asyncpg",
            username=self.postgres_user,
            password=self.postgres_password.get_secret_value(),
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
        )

    @property
    def asyncpg_dsn(self) -> str:
        """Return the URL in the plain `postgresql://` form `databases` and asyncpg accept,
        with the TLS parameters of POSTGRES_SSL* added where DATABASE_URL has none."""
        dsn = self.sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False)
        return with_postgres_tls(dsn, self._postgres_tls_settings)

    @property
    def _postgres_tls_settings(self) -> dict[str, str]:
        values = {
            "sslmode": self.postgres_sslmode,
            "sslrootcert": self.postgres_sslrootcert,
            "sslcert": self.postgres_sslcert,
            "sslkey": self.postgres_sslkey,
        }
        return {name: value for name, value in values.items() if value}

    @property
    def postgres_tls(self) -> dict[str, str]:
        """The PostgreSQL TLS parameters in effect: DATABASE_URL's, then POSTGRES_SSL*."""
        url = self.database_url.get_secret_value() if self.database_url else ""
        return {**self._postgres_tls_settings, **postgres_tls_of(url)}

    @functools.cached_property
    def kafka(self) -> KafkaConnection:
        """How every Kafka client reaches the brokers; its SSL context is built once."""
        context = None
        if self.kafka_security_protocol.endswith("SSL"):
            password = self.kafka_ssl_key_password
            try:
                context = client_ssl_context(
                    cafile=self.kafka_ssl_cafile,
                    certfile=self.kafka_ssl_certfile,
                    keyfile=self.kafka_ssl_keyfile,
                    key_password=password.get_secret_value() if password else None,
                    check_hostname=self.kafka_ssl_check_hostname,
                )
            except TlsFileError as exc:
                raise ValueError(f"invalid setting KAFKA_SSL_{exc.which.upper()}: {exc}") from None
        sasl_password = self.kafka_sasl_password
        return KafkaConnection(
            self.kafka_bootstrap_servers,
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            sasl_password.get_secret_value() if sasl_password else None,
            context,
            self.kafka_request_timeout,
        )

    @property
    def consumer_request_timeout(self) -> float:
        """How long the workers' consumer waits for an answer: KAFKA_REQUEST_TIMEOUT, but a
        group join waits out a whole rebalance, and Faust wants no less than the session."""
        return max(
            self.kafka_request_timeout,
            self.worker_session_timeout,
            self.worker_rebalance_timeout + JOIN_MARGIN,
        )

    @property
    def min_insync_replicas(self) -> int:
        """Replicas that must have a record before it is acknowledged: all but one."""
        if self.topic_min_insync_replicas is not None:
            return self.topic_min_insync_replicas
        return max(1, self.topic_replication_factor - 1)

    @property
    def api_key_list(self) -> tuple[str, ...]:
        """The accepted API keys; none means writes need no key."""
        return _split(self.api_keys.get_secret_value()) if self.api_keys else ()

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        """Origins whose pages may call the API; none (the default) allows no other origin."""
        return _split(self.cors_origins or "")

    @property
    def kafka_broker_url(self) -> str:
        """Return the bootstrap servers as a Faust broker URL list."""
        servers = [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
        return ";".join(s if "://" in s else f"kafka://{s}" for s in servers)


_EMPTY_IS_UNSET = frozenset(
    (
        "postgres_sslmode",
        "postgres_sslrootcert",
        "postgres_sslcert",
        "postgres_sslkey",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "kafka_ssl_key_password",
        "worker_web_token",
        "worker_instance_id",
        *(f"{name}_file" for name in SECRETS),
    )
)
_KAFKA_TLS_FILES = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")


def _get_either(data: dict[str, Any], name: str) -> Any:
    return data.get(name, data.get(name.upper()))


def _pop_either(data: dict[str, Any], name: str) -> Any:
    value = data.pop(name, None)
    upper = data.pop(name.upper(), None)
    return value or upper


def _check_readable(name: str, path: str | None) -> None:
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ValueError(
            f"invalid setting {name.upper()}: cannot read {path}: {exc.strerror or exc}"
        ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond this host


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning any validation error into a one-line `ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]).upper()
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("invalid setting "):
        return message
    if not field:
        return f"invalid configuration: {message}"
    return f"invalid setting {field}: {message}"


@functools.cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return load_settings()


def get_settings_or_exit() -> Settings:
    """Return the settings; a bad one ends the process with one line and exit code 2."""
    try:
        return get_settings()
    except ConfigError as exc:
        sys.stderr.write(f"streamapp: {exc}\n")
        raise SystemExit(2) from None
