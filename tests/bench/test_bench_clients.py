"""``stockflow bench clients``: the same bare endpoint through each client, in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))


def test_every_client_is_measured_against_the_same_server_and_written_as_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "clients.json"
    result = subprocess.run(
        [
            STOCKFLOW,
            "bench",
            "clients",
            "--duration",
            "0.5",
            "--concurrency",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [row["client"] for row in rows] == ["raw", "resilient", "kit", "httpx"]
    for row in rows:
        assert row["requests"] > 0, row
        assert row["cpu_us_per_request"] > 0, row
        assert row["p99_ms"] >= row["p50_ms"] > 0, row
    table = result.stdout.splitlines()
    assert table[0].split() == [
        "client",
        "req/s",
        "p50",
        "ms",
        "p99",
        "ms",
        "CPU",
        "us/req",
        "vs",
        "httpx",
    ]
    assert table[-1].split()[0] == "httpx"
    assert table[-1].split()[-1] == "1.00x"
