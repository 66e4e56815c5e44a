"""`stockflow up`, `up --distributed` and `serve` as a user runs them: real processes, real ports.

Every failure at start is one line that says what to do, with a non-zero exit; every service
of the registry comes up under the one runner.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from stockflow.runtime.registry import SERVICES
from stockflow_kit.lifecycle import ServiceProcess, free_port, free_port_block

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
pytestmark = pytest.mark.slow


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    within: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``stockflow *args`` with the environment plus *env*, less the variables in *unset*."""
    merged = {k: v for k, v in os.environ.items() if k not in unset} | (env or {})
    return subprocess.run(
        [STOCKFLOW, *args], capture_output=True, text=True, env=merged, timeout=within, check=False
    )


def assert_refused_without_traceback(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit 1 and a message, not a traceback; its last line."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def up(data_dir: Path, base: int, log: Path) -> ServiceProcess:
    inventory = next(s for s in SERVICES if s.name == "inventory")
    return ServiceProcess(
        [STOCKFLOW, "up", "--data-dir", str(data_dir), "--port-base", str(base)],
        name="stockflow up",
        port=base + inventory.port_offset,
        log=log,
    )


async def test_up_serves_every_service_of_the_registry_and_a_second_up_is_refused(
    tmp_path: Path,
) -> None:
    base = free_port_block(len(SERVICES))
    system = up(tmp_path / "data", base, tmp_path / "up.log")
    system.start()
    try:
        await system.wait_ready(within=60)
        async with httpx.AsyncClient(timeout=5) as client:
            for spec in SERVICES:  # each service reports ready on its own, soon after the first
                url = f"http://127.0.0.1:{base + spec.port_offset}/readyz"
                deadline = time.monotonic() + 30
                while (ready := await client.get(url)).status_code != 200:
                    assert time.monotonic() < deadline, (spec.name, ready.text)
                    await asyncio.sleep(0.2)
        token = (tmp_path / "data" / "service-token").read_text().strip()
        assert len(token) >= 32
        assert oct((tmp_path / "data" / "service-token").stat().st_mode)[-3:] == "600"
        second = run_cli("up", "--data-dir", str(tmp_path / "data"), "--port-base", str(base + 10))
        assert "in use by another stockflow" in assert_refused_without_traceback(second)
        clash = run_cli("up", "--data-dir", str(tmp_path / "other"), "--port-base", str(base))
        assert_refused_without_traceback(clash)
        assert "already in use" in clash.stderr
        assert "--port-base" in clash.stderr
    finally:
        assert system.terminate() == 0
    text = (tmp_path / "up.log").read_text()
    assert "inventory.stopped" in text
    assert "color_message" not in text


async def test_up_seeds_the_demo_stock_once_and_never_again(tmp_path: Path) -> None:
    from stockflow.runtime.seed import DEMO_STOCK

    base = free_port_block(len(SERVICES))
    for run in range(2):
        system = up(tmp_path / "data", base, tmp_path / f"up-{run}.log")
        system.start()
        try:
            await system.wait_ready(within=60)
            credential = (tmp_path / "data" / "service-token").read_text().strip()
            auth = {"Authorization": f"Bearer {credential}"}
            async with httpx.AsyncClient(timeout=5, headers=auth) as client:

                async def stock(sku: str) -> httpx.Response:
                    return await client.get(f"http://127.0.0.1:{base + 2}/inventory/{sku}")

                for sku, qty in DEMO_STOCK.items():
                    for _ in range(100):  # the seed runs once every service has started
                        response = await stock(sku)
                        if response.status_code == 200:
                            break
                        await asyncio.sleep(0.05)
                    assert response.status_code == 200, response.text
                    assert (response.json()["on_hand"], response.json()["version"]) == (qty, 1)
        finally:
            assert system.terminate() == 0
    assert "demo data: stock" in (tmp_path / "up-0.log").read_text()
    assert "demo data: stock" not in (tmp_path / "up-1.log").read_text()


def test_up_on_a_data_dir_that_is_a_file_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = run_cli(
        "up",
        "--data-dir",
        str(tmp_path / "file"),
        "--port-base",
        str(free_port_block(len(SERVICES))),
    )
    assert "--data-dir" in assert_refused_without_traceback(result)
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_up_on_a_corrupt_data_dir_says_which_file_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "inventory.sqlite3").write_bytes(b"this is not a SQLite database" * 100)
    result = run_cli(
        "up", "--data-dir", str(data), "--port-base", str(free_port_block(len(SERVICES)))
    )
    assert "inventory.sqlite3" in assert_refused_without_traceback(result)


def test_serve_refuses_to_start_without_a_service_credential(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "inventory",
        env={
            "INVENTORY_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
            "BUS_URL": f"sqlite:///{tmp_path / 'bus.sqlite3'}",
            "INVENTORY_PORT": str(free_port()),
        },
        unset=tuple(k for k in os.environ if k.endswith("SERVICE_TOKEN")),
    )
    assert "STOCKFLOW_SERVICE_TOKEN" in assert_refused_without_traceback(result)


def test_serve_names_an_unreachable_database_and_how_to_start_it(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "inventory",
        env={
            "INVENTORY_EVENT_STORE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
            "BUS_URL": f"sqlite:///{tmp_path / 'bus.sqlite3'}",
            "INVENTORY_PORT": str(free_port()),
        },
    )
    last = assert_refused_without_traceback(result)
    assert "is PostgreSQL running?" in last
    assert "pg_ctlcluster" in last


def test_serve_names_a_bad_setting_by_its_variable(tmp_path: Path) -> None:
    result = run_cli("serve", "inventory", env={"INVENTORY_PORT": "eighty"})
    assert_refused_without_traceback(result)
    assert "INVENTORY_PORT" in result.stderr


def test_up_refuses_the_pulsar_bus_and_says_why() -> None:
    result = run_cli("up", "--distributed", "--bus", "pulsar")
    assert result.returncode == 2
    assert "pulsar-lite" in result.stderr
    assert "--bus kafka" in result.stderr


def test_serve_of_an_unknown_service_lists_the_known_ones() -> None:
    result = run_cli("serve", "nothing")
    assert result.returncode == 2
    assert all(spec.name in result.stderr for spec in SERVICES)


@pytest.mark.integration
@pytest.mark.parametrize("bus", ["nats", "kafka"])
async def test_up_distributed_creates_each_database_and_serves_every_service(
    tmp_path: Path, postgres_url: str, nats_url: str, bus: str
) -> None:
    import asyncpg

    base = free_port_block(len(SERVICES))
    database = f"sftest_{uuid.uuid4().hex[:8]}"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    last = SERVICES[-1]  # started after all the others were ready
    system = ServiceProcess(
        [
            STOCKFLOW,
            "up",
            "--distributed",
            "--port-base",
            str(base),
            "--database-url",
            f"{admin.rsplit('/', 1)[0]}/{database}",
            "--nats-url",
            f"{nats_url}?prefix=t{uuid.uuid4().hex[:8]}",
            "--bus",
            bus,  # kafka: a private Tansu broker for the run
        ],
        name="stockflow up --distributed",
        port=base + last.port_offset,
        log=tmp_path / "up.log",
    )
    system.start()
    try:
        await system.wait_ready(within=90)
        auth = {"Authorization": f"Bearer {os.environ['STOCKFLOW_SERVICE_TOKEN']}"}
        async with httpx.AsyncClient(timeout=5, headers=auth) as client:
            for spec in SERVICES:
                ready = await client.get(f"http://127.0.0.1:{base + spec.port_offset}/readyz")
                assert ready.status_code == 200, (spec.name, ready.text)
            for _ in range(100):  # the demo seed follows once every process is ready
                seeded = await client.get(f"http://127.0.0.1:{base + 2}/inventory/SKU-1")
                if seeded.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert seeded.json()["on_hand"] == 100, seeded.text
        conn = await asyncpg.connect(admin)
        try:
            names = {
                r["datname"]
                for r in await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{database}_%"
                )
            }
        finally:
            await conn.close()
        assert names == {f"{database}_{spec.name}" for spec in SERVICES if spec.store_field}
    finally:
        assert system.terminate() == 0
        conn = await asyncpg.connect(admin)
        try:
            for spec in SERVICES:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}_{spec.name}" WITH (FORCE)')
        finally:
            await conn.close()


def test_up_names_a_bad_setting_by_its_variable(tmp_path: Path) -> None:
    result = run_cli(
        "up",
        "--data-dir",
        str(tmp_path / "data"),
        "--port-base",
        str(free_port_block(len(SERVICES))),
        env={"INVENTORY_BATCH_SIZE": "lots"},
    )
    assert_refused_without_traceback(result)
    assert "INVENTORY_BATCH_SIZE" in result.stderr


def test_serve_refuses_retention_windows_that_would_let_a_replay_through(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "inventory",
        env={
            "INVENTORY_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
            "BUS_URL": f"sqlite:///{tmp_path / 'bus.sqlite3'}",
            "INVENTORY_PORT": str(free_port()),
            "INVENTORY_PROCESSED_RETENTION_SECONDS": "60",
        },
    )
    assert_refused_without_traceback(result)
    assert "processed ids are kept" in result.stderr
