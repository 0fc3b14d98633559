"""Log lines: text or JSON (LOG_FORMAT), each with the request id it was logged for."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from streamapp.config import ConfigError, load_settings
from streamapp.logs import JsonFormatter, TextFormatter, _RequestId, current_request_id


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("streamapp.x", logging.WARNING, __file__, 1, message, (), None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_are_one_object_with_the_request_id() -> None:
    line = JsonFormatter().format(record("h\u00e9llo\nworld", request_id="r-1"))

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "h\u00e9llo\nworld"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "streamapp.x"
    assert entry["request_id"] == "r-1"
    assert entry["time"].endswith("+00:00")


def test_json_lines_carry_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record("failed", exc_info=sys.exc_info())
    parsed = json.loads(JsonFormatter().format(entry))

    assert "ValueError: boom" in parsed["exception"]


def test_text_lines_name_the_request_id_only_when_there_is_one() -> None:
    assert TextFormatter().format(record("a", request_id="r-2")).endswith("a [request_id=r-2]")
    assert TextFormatter().format(record("a", request_id=None)).endswith(": a")


def test_the_context_supplies_the_request_id() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_RequestId())
    token = current_request_id.set("r-3")
    try:
        entry = record("b")
        handler.filter(entry)
    finally:
        current_request_id.reset(token)

    assert entry.request_id == "r-3"


@pytest.mark.parametrize(
    ("given", "expected"), [("json", "json"), (" JSON ", "json"), ("Text", "text")]
)
def test_log_format_accepts_either_case(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.setenv("LOG_FORMAT", given)

    assert load_settings().log_format == expected


def test_an_unknown_log_format_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.setenv("LOG_FORMAT", "xml")

    with pytest.raises(ConfigError, match="invalid setting LOG_FORMAT"):
        load_settings()
