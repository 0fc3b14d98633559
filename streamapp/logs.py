"""Process-wide logging set-up, called once by each entry point."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries that are chatty at INFO; raised to WARNING unless DEBUG is asked for.
NOISY_LOGGERS = (
    "aiokafka",
    "faust.transport",
    "mode",
    "databases",
    "asyncio",
    "alembic.runtime.plugins",
)


def configure_logging(level: str) -> None:
    """Send every log record to stderr at `level` (the LOG_LEVEL setting)."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # The process's real stderr: a Faust worker replaces sys.stderr with a proxy into logging.
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    noisy = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy)
