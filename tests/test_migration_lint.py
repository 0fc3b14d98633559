"""squawk over each migration's SQL finds nothing that is not accepted, with a reason, by the
revision itself; and the rules that guard a live database are never accepted wholesale."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from tools import migration_lint

pytestmark = pytest.mark.skipif(
    migration_lint.squawk_binary() is None, reason="squawk-cli is a dev dependency"
)

LIVE_DATABASE_RULES = {
    "require-concurrent-index-creation",
    "require-concurrent-index-deletion",
    "constraint-missing-not-valid",
    "adding-not-nullable-field",
    "require-lock-timeout",
    "require-statement-timeout",
}


def test_every_revision_passes_squawk() -> None:
    assert migration_lint.main() == 0


def test_each_accepted_finding_says_why() -> None:
    for _, revision, path in migration_lint.revisions():
        for rule, why in migration_lint.accepted(path).items():
            assert len(why) > 20, f"{revision} accepts {rule} without saying why"


def test_the_rules_that_guard_a_live_database_are_not_switched_off() -> None:
    config = tomllib.loads((migration_lint.ROOT / ".squawk.toml").read_text())
    assert not LIVE_DATABASE_RULES & set(config["excluded_rules"])


def test_squawk_still_finds_an_unsafe_index(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.sql"
    unsafe.write_text(
        "SET lock_timeout = '5s';\nSET statement_timeout = '1min';\n"
        "BEGIN;\nCREATE INDEX ix_a ON applications (created_at);\nCOMMIT;\n"
    )
    squawk = migration_lint.squawk_binary()
    assert squawk is not None
    config = str(migration_lint.ROOT / ".squawk.toml")
    found = subprocess.run(
        [squawk, "--config", config, str(unsafe)], capture_output=True, text=True, check=False
    )
    assert found.returncode != 0
    assert "require-concurrent-index-creation" in found.stdout
