"""A real ``stockflow serve inventory`` process (SQLite + SqliteLogBus) killed with SIGKILL at
random points while it consumes, then restarted: every command is still applied exactly once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from tests.inventory.crash.worker_process import (
    Worker,
    all_processed,
    assert_exactly_once,
    eventually,
    make_workload,
)

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow_kit.messaging import SqliteLogBus

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("feeder", ["inline", "process"])
async def test_a_worker_killed_at_random_points_applies_every_command_exactly_once(
    tmp_path: Path, feeder: str
) -> None:
    """With ``feeder=process`` the SIGKILL hits the writer while its feeder child holds
    fetched, unacked batches: they must come back, and nothing may be acked uncommitted."""
    store_path = tmp_path / "inventory.sqlite3"
    bus_url = f"sqlite:///{tmp_path / 'bus.sqlite3'}"
    env = {
        "INVENTORY_EVENT_STORE_URL": f"sqlite:///{store_path}",
        "BUS_URL": bus_url,
        "INVENTORY_ACK_WAIT": "1",
        "INVENTORY_MAX_DELIVER": "1000",
        "INVENTORY_BATCH_SIZE": "200",
        "INVENTORY_SNAPSHOT_EVERY": "50",
        "INVENTORY_FEEDER": feeder,
    }
    workload = make_workload(4000, seed=11)
    bus = SqliteLogBus(bus_url)
    await bus.start()
    store = SqliteEventStore(store_path)
    worker = Worker(env, tmp_path / "worker.log")
    rng = random.Random(5)
    try:
        worker.start()
        await worker.wait_ready()
        await store.start()
        await bus.publish(COMMANDS_TOPIC, workload.seeds)
        seed_ids = [e.id for e in workload.seeds]
        await eventually(lambda: all_processed(store, seed_ids))
        for start in range(0, len(workload.commands), 500):
            await bus.publish(COMMANDS_TOPIC, workload.commands[start : start + 500])
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            worker.kill()
            worker.start()
            await worker.wait_ready()
        ids = [e.id for e in workload.commands]
        await eventually(lambda: all_processed(store, ids))
        worker.terminate_gracefully()
        await assert_exactly_once(store, workload)
    finally:
        worker.kill()
        await store.close()
        await bus.close()
