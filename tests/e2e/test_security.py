"""Security: optional API keys on writes, CORS closed unless opened, workers' web views on
loopback, and no secret in any log line or answer, with the whole stack running at DEBUG."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy.engine import make_url

from tools.stack.processes import Api, Worker, api_and_worker, child_env, wait_for

PASSWORD = "pw-Kx7Qz2Lr9Vt4"
KEYS = ("key-alpha-3Fh8Lq2Zm6Wp", "key-beta-9Rt5Nc1Xv7Yk")
WRONG_KEY = "key-wrong-0Qa4Sd8Fg2Hj"
ORIGIN = "https://apps.example.com"


@dataclass
class Stack:
    api: Api
    worker: Worker
    env: dict[str, str]
    answers: list[httpx.Response]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{self.api.url}{path}", timeout=30, **kwargs)
        self.answers.append(response)
        return response


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str]) -> Iterator[Stack]:
    url = make_url(service_env["DATABASE_URL"]).set(password=PASSWORD)
    env = child_env(
        **{
            **service_env,
            "DATABASE_URL": url.render_as_string(hide_password=False),
            "API_KEYS": ",".join(KEYS),
            "CORS_ORIGINS": ORIGIN,
            "LOG_LEVEL": "DEBUG",
        }
    )
    env.pop("WORKER_WEB_BIND", None)
    with api_and_worker(env) as (api, worker):
        yield Stack(api, worker, env, [])


def application(user: str) -> dict[str, str]:
    return {"user_name": user, "description": "with a key"}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": WRONG_KEY}, {"X-API-Key": ""}])
def test_writes_without_an_accepted_key_are_401(stack: Stack, headers: dict[str, str]) -> None:
    for path, body in (("/applications", application("no-key")), ("/users", {"user_name": "n"})):
        response = stack.request("POST", path, json=body, headers=headers)

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'


def test_a_write_without_a_key_is_401_before_its_body_is_read(stack: Stack) -> None:
    for path in ("/applications", "/users"):
        response = stack.request("POST", path, content=b"{not json", headers={})

        assert response.status_code == 401, path


def test_each_key_may_write_and_reads_need_none(stack: Stack, user_name: str) -> None:
    for key in KEYS:
        response = stack.request(
            "POST", "/applications", json=application(user_name), headers={"X-API-Key": key}
        )
        assert response.status_code == 201
    listing = stack.request("GET", "/applications", params={"user_name": user_name})

    assert listing.status_code == 200
    assert len(listing.json()["applications"]) == 2


def test_the_schema_declares_the_key_on_writes_only(stack: Stack) -> None:
    schema = stack.request("GET", "/openapi.json").json()

    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    secured = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert secured == {("post", "/applications"), ("post", "/users")}


def test_cors_answers_the_configured_origin_only(stack: Stack) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = stack.request("OPTIONS", "/applications", headers={"Origin": ORIGIN, **preflight})
    other = stack.request(
        "OPTIONS", "/applications", headers={"Origin": "https://evil.example", **preflight}
    )
    read = stack.request("GET", "/applications", headers={"Origin": ORIGIN})

    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-API-Key" in allowed.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers
    assert read.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_worker_web_views_listen_on_loopback_by_default(stack: Stack) -> None:
    assert stack.worker.process is not None
    listening = [
        connection.laddr
        for connection in psutil.Process(stack.worker.process.pid).net_connections("inet")
        if connection.status == psutil.CONN_LISTEN
    ]

    assert (("127.0.0.1", stack.worker.web_port)) in [(a.ip, a.port) for a in listening]
    assert all(a.ip == "127.0.0.1" for a in listening if a.port == stack.worker.web_port)


def test_no_secret_in_any_log_line_or_answer(stack: Stack, user_name: str) -> None:
    """Last in this module: the others' requests (401s included) are in the logs by now."""
    stack.request("POST", "/applications", json={"user_name": ""}, headers={"X-API-Key": KEYS[0]})
    stack.request("GET", "/applications/999999999")
    stack.request("POST", "/users", content=b"{", headers={"X-API-Key": WRONG_KEY})
    created = stack.request(
        "POST", "/applications", json=application(user_name), headers={"X-API-Key": KEYS[1]}
    )
    path = f"/applications/{created.json()['id']}"
    wait_for(lambda: stack.request("GET", path).json()["status"] == "processed", timeout=60)

    secrets = (PASSWORD, *KEYS, WRONG_KEY)
    texts = {
        "API log": stack.api.log(),
        "worker log": stack.worker.log(),
        **{f"answer {i}": answer.text for i, answer in enumerate(stack.answers)},
        **{f"{h} header": v for a in stack.answers for h, v in a.headers.items()},
    }
    assert "DEBUG" in texts["API log"]
    assert "DEBUG" in texts["worker log"]
    leaks = [
        (where, secret) for where, text in texts.items() for secret in secrets if secret in text
    ]
    assert leaks == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("API_KEYS", f"{KEYS[0]},short-{PASSWORD[:4]}"),
        ("DATABASE_URL", f"postgresql://u:{PASSWORD}@localhost:notaport/db"),
    ],
)
def test_a_bad_secret_setting_is_named_but_never_echoed(setting: str, value: str) -> None:
    env = child_env(**{"DATABASE_URL": "postgresql://u@localhost/db", setting: value})
    result = subprocess.run(
        [sys.executable, "-m", "streamapp", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert f"invalid setting {setting}" in result.stderr
    for secret in (PASSWORD, KEYS[0], f"short-{PASSWORD[:4]}"):
        assert secret not in result.stderr + result.stdout
