"""A full disk: writes answer 503, readiness turns false, the cause is logged once, and the
service recovers by itself when space returns (issue: hardening, item 5).

The data dir is a 600 KiB tmpfs mounted by the test (root only; elsewhere the test is skipped
with that reason, and fails under STOCKFLOW_REQUIRE_SERVICES=1 as CI must not skip it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.inventory.crash.private_servers import unavailable
from tests.inventory.crash.worker_process import Worker

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        unavailable("mounting a 600 KiB tmpfs for the full-disk test needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Write a filler file that leaves about *leave* bytes free on its filesystem."""
    stat = os.statvfs(path.parent)
    free = stat.f_bavail * stat.f_frsize
    with path.open("wb") as out, contextlib.suppress(OSError):
        out.write(b"\0" * max(free - leave, 0))


async def test_a_full_disk_is_a_503_and_not_ready_then_recovers(
    small_disk: Path, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = Worker(
        {
            "INVENTORY_EVENT_STORE_URL": f"sqlite:///{small_disk / 'inventory.sqlite3'}",
            "BUS_URL": f"sqlite:///{tmp_path / 'bus.sqlite3'}",  # the bus lives elsewhere
            "INVENTORY_PUBLISH_EVENTS": "false",
            "INVENTORY_SNAPSHOT_EVERY": "0",
        },
        log,
    )
    base = f"http://127.0.0.1:{worker.port}"
    statuses: list[int] = []
    try:
        worker.start()
        await worker.wait_ready()
        _fill(small_disk / "filler", leave=48 * 1024)
        async with httpx.AsyncClient(timeout=10, headers=worker.auth) as client:
            for i in range(2000):
                response = await client.post(
                    f"{base}/inventory/SKU-{i}/receipts",
                    json={"qty": 1, "reference": "r" * 200},
                )
                statuses.append(response.status_code)
                if response.status_code >= 500:
                    break
            assert statuses[-1] == 503, f"the disk never filled up: {statuses[-5:]}"
            assert response.headers["content-type"].startswith("application/problem+json")
            assert set(statuses) <= {201, 503}, sorted(set(statuses))
            ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 503
            assert "full" in ready.json()["detail"]
            # More writes while full: each a 503, but the cause is logged once.
            for i in range(5):
                again = await client.post(f"{base}/inventory/X-{i}/receipts", json={"qty": 1})
                assert again.status_code == 503
            (small_disk / "filler").unlink()
            deadline = time.monotonic() + 30
            while (await client.get(f"{base}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "not ready again after space returned"
                await asyncio.sleep(0.2)
            after = await client.post(f"{base}/inventory/AFTER/receipts", json={"qty": 2})
            assert after.status_code == 201
            assert (await client.get(f"{base}/readyz")).status_code == 200
    finally:
        worker.kill()
    text = log.read_text()
    assert text.count("inventory.storage_failed") == 1, text[-3000:]
    assert "database or disk is full" in text
    assert "cannot rollback" not in text
    assert "inventory.storage_recovered" in text
