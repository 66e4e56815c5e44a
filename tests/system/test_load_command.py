"""``stockflow load`` against the running system: traffic of every kind answered, every order
settled, the figures written, and the audit it runs at the end clean."""

from __future__ import annotations

import json
import subprocess

import pytest
from tests.system.system import STOCKFLOW, System

pytestmark = pytest.mark.usefixtures("audited")


def test_stockflow_load_drives_the_system_and_audits_it(system: System) -> None:
    figures = system.root / "load.json"
    command = [STOCKFLOW, "load", "--url", system.url(), "--data-dir", str(system.data_dir)]
    command += ["--rate", "10,20", "--duration", "3", "--no-compare-bare", "--json", str(figures)]
    command += ["--customers", "5", "--replay-fraction", "0.2", "--cancel-fraction", "0.3"]
    if system.mode == "distributed":
        command += ["--distributed", "--database-url", system.database_url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "checks hold" in result.stdout
    report = json.loads(figures.read_text())
    assert [step["rate"] for step in report["steps"]] == [10, 20]
    for step in report["steps"]:
        assert step["accepted"] > 0
        assert step["unsettled"] == 0
        assert step["replay_mismatches"] == 0
        assert step["server_errors"] == 0
        assert set(step["kinds"]) >= {"place", "browse", "receipt"}
        assert sum(step["settled"].values()) == step["accepted"]
        assert step["settled_ms"]["p50"] > 0
