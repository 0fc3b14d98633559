"""`streamapp dev`: the whole system on embedded services (filled in below)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    return 0
