"""Where the deploy files are, and how a test reads them."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "stockflow.json"


def tool(path: str, why: str) -> str:
    """The executable at *path*: missing fails under CI=true (CI installs it), else skips."""
    found = shutil.which(path)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} missing: {why}")
        pytest.skip(f"{path} missing: {why}")
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of deploy/prometheus/alerts.yml."""
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_builder() -> ModuleType:
    """deploy/grafana/build.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "stockflow_dashboard_build", DEPLOY / "grafana" / "build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def panel_queries(board: dict[str, Any]) -> dict[str, list[str]]:
    """Each panel's title and its query expressions (rows have none)."""
    return {
        panel["title"]: [target["expr"] for target in panel.get("targets") or []]
        for panel in board["panels"]
        if panel.get("type") != "row"
    }
