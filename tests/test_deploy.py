"""The deployment examples say what the service understands: every variable they set is a
setting, and every probe they name is a path the workers serve without a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streamapp.config import Settings
from streamapp.web.worker.auth import OPEN_PATHS

KUBERNETES = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
POD_FIELDS = {"POD_NAME", "POD_NAMESPACE"}  # the downward API, used to build settings


def containers() -> list[dict[str, Any]]:
    found = []
    for manifest in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            spec = document.get("spec", {}).get("template", {}).get("spec", {})
            found += spec.get("containers", [])
    return found


def test_the_kubernetes_examples_set_only_settings_the_service_reads() -> None:
    known = {name.upper() for name in Settings.model_fields}
    names = {entry["name"] for c in containers() for entry in c.get("env", [])}
    assert names
    assert names - POD_FIELDS <= known, names - POD_FIELDS - known


def test_the_kubernetes_probes_are_the_workers_open_probe_paths() -> None:
    probes = [
        c[kind]["httpGet"]["path"]
        for c in containers()
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
        if kind in c
    ]
    assert probes
    assert set(probes) <= OPEN_PATHS
    assert "/readyz/" in probes
