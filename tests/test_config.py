"""Settings: original variable names, DATABASE_URL override, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamapp.config import ConfigError, load_settings

ORIGINAL = {
    "POSTGRES_USER": "app",
    "POSTGRES_PASSWORD": "p@ss:word/#",
    "POSTGRES_DB": "applications",
    "POSTGRES_HOST": "db.internal",
    "POSTGRES_PORT": "6543",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    "HOST_CONSUMER": "kafka:9092",
    "LOG_LEVEL": "debug",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (*ORIGINAL, "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_original_variables_build_the_database_url(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in ORIGINAL.items():
        clean_env.setenv(name, value)

    settings = load_settings()

    url = settings.sqlalchemy_url
    assert (url.host, url.port, url.database, url.username) == (
        "db.internal",
        6543,
        "applications",
        "app",
    )
    assert url.password == "p@ss:word/#"
    assert settings.asyncpg_dsn.startswith("postgresql://app:")
    assert settings.log_level == "DEBUG"
    assert settings.kafka_broker_url == "kafka://kafka:9092"
    assert settings.host_consumer == "kafka:9092"


def test_database_url_overrides_the_parts(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgres://u:pw@h:5/d")

    settings = load_settings()

    assert settings.asyncpg_dsn == "postgresql://u:pw@h:5/d"
    assert settings.sqlalchemy_url.drivername == "postgresql+asyncpg"


def test_dotenv_in_the_working_directory_is_read(clean_env: pytest.MonkeyPatch) -> None:
    Path(".env").write_text('DATABASE_URL="postgresql://e:e@envfile/db"\nLOG_LEVEL=WARNING\n')

    settings = load_settings()

    assert settings.sqlalchemy_url.host == "envfile"
    assert settings.log_level == "WARNING"


def test_several_bootstrap_servers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://u@h/d")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")

    assert load_settings().kafka_broker_url == "kafka://a:1;kafka://b:2"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "missing setting POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB"),
        ({**ORIGINAL, "POSTGRES_PORT": "port"}, "invalid setting POSTGRES_PORT"),
        ({**ORIGINAL, "POSTGRES_PORT": "70000"}, "invalid setting POSTGRES_PORT"),
        ({**ORIGINAL, "LOG_LEVEL": "LOUD"}, "invalid setting LOG_LEVEL"),
        ({**ORIGINAL, "TOPIC_PARTITIONS": "0"}, "invalid setting TOPIC_PARTITIONS"),
        ({"DATABASE_URL": "not a url"}, "invalid setting DATABASE_URL: not a database URL"),
        (
            {**ORIGINAL, "DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"},
            "invalid setting DB_POOL_MIN_SIZE: must not be larger than DB_POOL_MAX_SIZE (2)",
        ),
        (
            {
                "DATABASE_URL": "postgresql://u@h/d",
                "DB_POOL_MIN_SIZE": "5",
                "DB_POOL_MAX_SIZE": "2",
            },
            "invalid setting DB_POOL_MIN_SIZE: must not be larger than DB_POOL_MAX_SIZE (2)",
        ),
        ({"DATABASE_URL": "postgresql://u@h/d", "DB_POOL_MAX_SIZE": "0"}, "DB_POOL_MAX_SIZE"),
        ({**ORIGINAL, "API_KEYS": " , "}, "invalid setting API_KEYS: no key in it"),
        ({**ORIGINAL, "API_KEYS": "0123456789abcdef,short"}, "at least 16 characters"),
        ({**ORIGINAL, "CORS_ORIGINS": "apps.example.com"}, "invalid setting CORS_ORIGINS"),
        ({**ORIGINAL, "CORS_ORIGINS": "https://a.example/path"}, "invalid setting CORS_ORIGINS"),
        ({**ORIGINAL, "WORKER_INSTANCE_ID": "worker 1"}, "invalid setting WORKER_INSTANCE_ID"),
        ({**ORIGINAL, "WORKER_INSTANCE_ID": "w" * 250}, "invalid setting WORKER_INSTANCE_ID"),
        ({**ORIGINAL, "API_MAX_CONCURRENCY": "-1"}, "invalid setting API_MAX_CONCURRENCY"),
        ({**ORIGINAL, "API_MAX_CONCURRENCY": "many"}, "invalid setting API_MAX_CONCURRENCY"),
        ({**ORIGINAL, "API_QUEUE_TIMEOUT": "0"}, "invalid setting API_QUEUE_TIMEOUT"),
        ({**ORIGINAL, "DB_POOL_TIMEOUT": "0"}, "invalid setting DB_POOL_TIMEOUT"),
    ],
)
def test_bad_settings_fail_with_one_line_naming_them(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)

    with pytest.raises(ConfigError) as error:
        load_settings()

    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("env", "limit", "queue", "pool"),
    [
        ({}, 64, 0.5, 2.0),
        ({"API_MAX_CONCURRENCY": "0"}, 0, 0.5, 2.0),  # no limit
        ({"API_MAX_CONCURRENCY": "1", "API_QUEUE_TIMEOUT": "0.01"}, 1, 0.01, 2.0),
        ({"DB_POOL_TIMEOUT": "3600"}, 64, 0.5, 3600.0),
    ],
)
def test_shedding_settings_take_their_edge_values(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], limit: int, queue: float, pool: float
) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://u@h/d")
    for name, value in env.items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert (settings.api_max_concurrency, settings.api_queue_timeout) == (limit, queue)
    assert settings.db_pool_timeout == pool


def test_passwords_are_not_in_the_settings_repr(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in ORIGINAL.items():
        clean_env.setenv(name, value)
    assert "p@ss" not in repr(load_settings())

    clean_env.setenv("DATABASE_URL", "postgresql://u:hunter2@h/d")
    assert "hunter2" not in repr(load_settings())


def test_keys_and_origins_are_lists_and_empty_means_off(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://u@h/d")
    clean_env.setenv("API_KEYS", "")
    clean_env.setenv("CORS_ORIGINS", "")
    assert (load_settings().api_key_list, load_settings().cors_origin_list) == ((), ())

    clean_env.setenv("API_KEYS", " 0123456789abcdef , fedcba9876543210")
    clean_env.setenv("CORS_ORIGINS", "https://a.example, http://localhost:3000,*")
    settings = load_settings()

    assert settings.api_key_list == ("0123456789abcdef", "fedcba9876543210")
    assert settings.cors_origin_list == ("https://a.example", "http://localhost:3000", "*")
    assert "0123456789abcdef" not in repr(settings)
    assert settings.worker_web_bind == "127.0.0.1"


def test_equal_pool_sizes_are_fine(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://u@h/d")
    clean_env.setenv("DB_POOL_MIN_SIZE", "4")
    clean_env.setenv("DB_POOL_MAX_SIZE", "4")

    settings = load_settings()

    assert (settings.db_pool_min_size, settings.db_pool_max_size) == (4, 4)


FAUST = str(Path(sys.executable).with_name("faust"))


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "streamapp", "migrate"],
        [sys.executable, "-m", "streamapp", "api"],
        [sys.executable, "-m", "streamapp", "worker"],
        [FAUST, "-A", "streamapp.stream.app", "worker"],
    ],
    ids=["migrate", "api", "worker", "faust-worker"],
)
def test_every_entry_point_reports_a_bad_setting_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/d",
        "DB_POOL_MIN_SIZE": "5",
        "DB_POOL_MAX_SIZE": "2",
    }
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("streamapp: invalid setting DB_POOL_MIN_SIZE:")


def test_settings_are_frozen() -> None:
    settings = load_settings(database_url="postgresql://u@h/d")
    with pytest.raises(ValueError, match="frozen"):
        settings.log_level = "DEBUG"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("streamapp-worker-0", "streamapp-worker-0"), ("a.b_C-9", "a.b_C-9"), ("", None)],
)
def test_worker_instance_ids_kafka_accepts_and_empty_means_off(
    clean_env: pytest.MonkeyPatch, given: str, expected: str | None
) -> None:
    for name, value in {**ORIGINAL, "WORKER_INSTANCE_ID": given}.items():
        clean_env.setenv(name, value)
    assert load_settings().worker_instance_id == expected
