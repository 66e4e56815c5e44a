"""``stockflow up`` (embedded and distributed) seeds the demo users' profiles through the
profiles API, once: a second start on the same data changes nothing."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.servers import admin_execute, delete_streams

from stockflow.runtime.registry import SERVICES
from stockflow.runtime.seed import DEMO_USERS
from stockflow_kit.lifecycle import ServiceProcess, free_port_block

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
PROFILES = next(s for s in SERVICES if s.name == "profiles")
pytestmark = pytest.mark.slow


async def seeded_profiles(base: int, token: str) -> dict[str, dict[str, Any]]:
    """The demo users' profiles once the seed wrote them all (it runs after start-up)."""
    url = f"http://127.0.0.1:{base + PROFILES.port_offset}/profiles"
    staff = {"Authorization": f"Bearer {token}", "X-Stockflow-Role": "staff"}
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(200):
            page = (await client.get(url, headers=staff)).json()
            found = {p["user_id"]: p for p in page["profiles"]}
            if len(found) >= len(DEMO_USERS):
                return found
            await asyncio.sleep(0.05)
    raise AssertionError(f"the demo profiles were not seeded: {found}")


async def seed_finished(system: ServiceProcess) -> str:
    """The log once the seed announced its end (the demo users line follows every seed)."""
    for _ in range(200):
        text = system.log_tail(1_000_000)
        if "demo users:" in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"the seed did not finish:\n{text[-2000:]}")


def expected() -> dict[str, tuple[str, str, int]]:
    return {u.user_id: (u.name, u.email, 1) for u in DEMO_USERS}


def summary(found: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str, int]]:
    return {k: (p["name"], p["email"], p["version"]) for k, p in found.items()}


async def test_up_seeds_the_demo_profiles_once_and_never_again(tmp_path: Path) -> None:
    base = free_port_block(len(SERVICES))
    announced: list[str] = []
    for run in range(2):
        system = ServiceProcess(
            [STOCKFLOW, "up", "--data-dir", str(tmp_path / "data"), "--port-base", str(base)],
            name="stockflow up",
            port=base + PROFILES.port_offset,
            log=tmp_path / f"up-{run}.log",
        )
        system.start()
        try:
            await system.wait_ready(within=60)
            token = (tmp_path / "data" / "service-token").read_text().strip()
            assert summary(await seeded_profiles(base, token)) == expected()
            announced.append(await seed_finished(system))
        finally:
            assert system.terminate() == 0
    assert "profiles alice, bob, sam" in announced[0]
    assert "profiles alice" not in announced[1]


@pytest.mark.integration
async def test_up_distributed_seeds_the_demo_profiles(
    tmp_path: Path, postgres_url: str, nats_url: str
) -> None:
    base = free_port_block(len(SERVICES))
    run = uuid.uuid4().hex[:8]
    database = f"sfprof_{run}"
    server = postgres_url.rsplit("/", 1)[0]
    system = ServiceProcess(
        [
            STOCKFLOW,
            "up",
            "--distributed",
            "--port-base",
            str(base),
            "--database-url",
            f"{server}/{database}",
            "--nats-url",
            f"{nats_url}?prefix=t{run}",
        ],
        name="stockflow up --distributed",
        port=base + SERVICES[-1].port_offset,
        log=tmp_path / "up.log",
    )
    system.start()
    try:
        await system.wait_ready(within=90)
        token = os.environ["STOCKFLOW_SERVICE_TOKEN"]
        assert summary(await seeded_profiles(base, token)) == expected()
    finally:
        assert system.terminate() == 0
        await delete_streams(nats_url, prefix=f"t{run}_")
        for spec in SERVICES:
            await admin_execute(
                postgres_url, f'DROP DATABASE IF EXISTS "{database}_{spec.name}" WITH (FORCE)'
            )
