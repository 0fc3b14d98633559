"""Lint each Alembic revision's upgrade SQL with squawk (PyPI `squawk-cli`).

Every revision is rendered on its own (`alembic upgrade PREV:REV --sql`), so each finding
names its revision. A revision accepts a finding only by naming the rule, and why, in its
module's `SQUAWK_IGNORE`; the schema's conventions are accepted in `.squawk.toml`. Exits 1
with squawk's findings when any is left.

    python -m tools.migration_lint
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from streamapp.migrate import alembic_config

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_URL = "postgresql://lint@localhost/lint"  # never connected to: the SQL is rendered


def squawk_binary() -> str | None:
    """squawk beside this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    return str(beside) if beside.exists() else shutil.which("squawk")


def revisions() -> list[tuple[str, str, Path]]:
    """(previous, revision, file) of every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(OFFLINE_URL))
    ordered = list(reversed(list(script.walk_revisions())))
    return [(r.down_revision or "base", r.revision, Path(r.path)) for r in ordered]


def accepted(path: Path) -> dict[str, str]:
    """The revision's SQUAWK_IGNORE: rule -> why it is accepted there."""
    spec = importlib.util.spec_from_file_location(f"revision_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "SQUAWK_IGNORE", {}))


def upgrade_sql(previous: str, revision: str) -> str:
    config = alembic_config(OFFLINE_URL)
    config.output_buffer = io.StringIO()
    command.upgrade(config, f"{previous}:{revision}", sql=True)
    return config.output_buffer.getvalue()


def render(folder: Path) -> list[Path]:
    """Each revision's SQL, its accepted rules ahead as squawk-ignore-file comments."""
    files = []
    for previous, revision, path in revisions():
        ignores = "".join(f"-- squawk-ignore-file {rule}\n" for rule in accepted(path))
        target = folder / f"{revision}.sql"
        target.write_text(ignores + upgrade_sql(previous, revision))
        files.append(target)
    return files


def main() -> int:
    squawk = squawk_binary()
    if squawk is None:
        sys.stderr.write("squawk is not installed: pip install squawk-cli\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="streamapp-migrations-") as folder:
        files = render(Path(folder))
        result = subprocess.run(
            [squawk, "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc", *map(str, files)],
            capture_output=True,
            text=True,
            check=False,
        )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        sys.stdout.write(f"squawk: {len(files)} revisions, nothing found\n")
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
