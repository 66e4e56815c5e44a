"""The README's walk-through, executed: the block between ``<!-- walkthrough -->`` markers runs
in bash against a fresh ``stockflow up`` (free ports, a temporary data dir), and what its
comments promise is checked in its output."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.system.system import System, embedded

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- walkthrough -->\s*```sh\n(.*?)```", re.DOTALL)


def walkthrough() -> str:
    found = BLOCK.search((ROOT / "README.md").read_text())
    assert found is not None, "README.md has no <!-- walkthrough --> ```sh block"
    return found.group(1)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[System]:
    system = embedded(tmp_path)
    asyncio.run(system.start())
    try:
        yield system
    finally:
        code = asyncio.run(system.stop())
    assert code == 0, f"stockflow up exited {code} on SIGTERM (graceful shutdown)"


def test_the_readme_walkthrough_works_as_written(running: System) -> None:
    script = walkthrough()
    assert "make run" not in script.split("\n", 1)[1], "the block runs beside make run"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={
            **os.environ,
            "EDGE": running.url(),
            "STOCKFLOW_DATA_DIR": str(running.data_dir),
        },
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert '"name":"Alice' in out.replace(" ", ""), out  # the seeded profile
    assert '"on_hand":105' in out.replace(" ", ""), out  # 100 seeded + 5 received
    assert '"status":"PENDING"' in out.replace(" ", ""), out
    assert '"status":"CONFIRMED"' in out.replace(" ", ""), out
    assert '"status":"CANCELLED"' in out.replace(" ", ""), out
    assert "OrderConfirmed" in out, out
    assert "checks hold" in out, out  # the audit's verdict (its exit code 0: set -e)
    assert running.server_errors() == []
