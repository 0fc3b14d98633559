"""Process-wide logging set-up, called once by each entry point.

Two formats (LOG_FORMAT): `text`, one readable line per record, and `json`, one JSON object
per line. Either carries the request id of the request (API) or the record (worker) being
handled, so one id traces an application from its POST to its processing.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from typing_extensions import override

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Loggers that say nothing an operator needs at INFO; raised to WARNING unless DEBUG is asked
# for. uvicorn, Faust (and its `mode` services) and aiokafka follow LOG_LEVEL exactly.
NOISY_LOGGERS = ("databases", "asyncio", "alembic.runtime.plugins")

# The id of the request (or of the record's request) this task is handling, if any.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class _RequestId(logging.Filter):
    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    @override
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and the
    request id and exception when there are any."""

    @override
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if rid := getattr(record, "request_id", None):
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send every log record to stderr at `level` (LOG_LEVEL), as `log_format` (LOG_FORMAT)."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # The process's real stderr: a Faust worker replaces sys.stderr with a proxy into logging.
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RequestId())
    root.addHandler(handler)
    root.setLevel(numeric)
    noisy = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy)
