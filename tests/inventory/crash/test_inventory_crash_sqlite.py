"""A real ``stockflow serve inventory`` process (SQLite + SqliteLogBus) killed with SIGKILL at
random points while it consumes, then restarted: every command is still applied exactly once.

Each life gets a chunk of commands and is killed once it has handled a random part of it (on
progress, read from its metrics), so every kill lands while the worker is consuming: killed
at random times instead, the first life or two consumed the whole workload and the later kills
hit an idle worker."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest
from tests.inventory.crash.worker_process import (
    Worker,
    all_processed,
    assert_exactly_once,
    eventually,
    handled,
    make_workload,
    until,
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
        lives = 4
        chunk = len(workload.commands) // lives
        for life in range(lives):
            await bus.publish(COMMANDS_TOPIC, workload.commands[life * chunk : (life + 1) * chunk])
            strike_at = rng.randint(50, chunk // 2)
            consuming = await until(functools.partial(handled, worker, strike_at), within=60)
            assert consuming, f"life {life} did not handle {strike_at} commands within 60 s"
            worker.kill()
            worker.start()
            await worker.wait_ready()
        await bus.publish(COMMANDS_TOPIC, workload.commands[lives * chunk :])
        ids = [e.id for e in workload.commands]
        await eventually(lambda: all_processed(store, ids))
        worker.terminate_gracefully()
        await assert_exactly_once(store, workload)
    finally:
        worker.kill()
        await store.close()
        await bus.close()
