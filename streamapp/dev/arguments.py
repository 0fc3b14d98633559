"""The options of `streamapp dev`, apart from the stack itself: building the command line
must not import what the stack needs (alembic, the embedded servers), which every other
command (a worker's start, above all) would then load for nothing."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument(
        "--worker-port", type=int, default=6066, help="first worker's web port; the next +1..."
    )
    parser.add_argument("--postgres-port", type=int, default=0, help="0: a free port")
    parser.add_argument("--broker-port", type=int, default=0, help="0: a free port")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep PostgreSQL data here between runs (default: a temporary directory)",
    )
