"""Settings: one class, read from the environment and a `.env` in the working directory."""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
REQUIRED_WITHOUT_DATABASE_URL = ("postgres_user", "postgres_password", "postgres_db")


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
    db_pool_min_size: int = Field(default=2, ge=1)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_command_timeout: float = Field(default=10.0, gt=0)

    kafka_bootstrap_servers: str = "localhost:9092"
    host_consumer: str | None = None
    topic_partitions: int = Field(default=8, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    worker_batch_size: int = Field(default=200, ge=1)
    worker_batch_seconds: float = Field(default=0.5, gt=0)
    worker_rebalance_timeout: float = Field(default=60.0, gt=0)
    worker_session_timeout: float = Field(default=60.0, gt=0)
    worker_heartbeat_interval: float = Field(default=3.0, gt=0)
    worker_data_dir: str = ".streamapp-data"
    worker_web_host: str | None = None

    outbox_relay_interval: float = Field(default=1.0, gt=0)
    outbox_relay_delay: float = Field(default=5.0, ge=0)
    outbox_relay_batch_size: int = Field(default=500, ge=1)
    outbox_max_backoff: float = Field(default=30.0, gt=0)
    outbox_retention_hours: float = Field(default=24.0, ge=0)
    redeliver_after: float = Field(default=60.0, ge=0)
    publish_timeout: float = Field(default=10.0, gt=0)

    max_body_bytes: int = Field(default=16 * 1024, ge=256)
    log_level: LogLevel = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _normalise_log_level(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("log_level", "LOG_LEVEL"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].strip().upper()
        return data

    @model_validator(mode="after")
    def _require_database(self) -> Settings:
        if self.database_url:
            try:
                make_url(self.database_url.get_secret_value())
            except Exception as exc:
                raise ValueError(f"DATABASE_URL is not a database URL: {exc}") from None
            return self
        missing = [name for name in REQUIRED_WITHOUT_DATABASE_URL if not getattr(self, name)]
        if missing:
            names = ", ".join(name.upper() for name in missing)
            raise ValueError(f"missing setting {names} (or set DATABASE_URL)")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE is larger than DB_POOL_MAX_SIZE")
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
        """Return the URL in the plain `postgresql://` form `databases` and asyncpg accept."""
        return self.sqlalchemy_url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )

    @property
    def kafka_broker_url(self) -> str:
        """Return the bootstrap servers as a Faust broker URL list."""
        servers = [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]
        return ";".join(s if "://" in s else f"kafka://{s}" for s in servers)


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
    if not field:
        return f"invalid configuration: {message}"
    return f"invalid setting {field}: {message}"


@functools.cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return load_settings()
