"""``INVENTORY_FEEDER=process``: the feeder child dies, the writer notices, says so on /readyz,
restarts it, and every command is still applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
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


def feeder_pids(parent: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "entrypoints.feeder"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


async def test_a_killed_feeder_is_restarted_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    store_path = tmp_path / "inventory.sqlite3"
    bus_url = f"sqlite:///{tmp_path / 'bus.sqlite3'}"
    worker = Worker(
        {
            "INVENTORY_EVENT_STORE_URL": f"sqlite:///{store_path}",
            "BUS_URL": bus_url,
            "INVENTORY_ACK_WAIT": "1",
            "INVENTORY_MAX_DELIVER": "1000",
            "INVENTORY_BATCH_SIZE": "200",
            "INVENTORY_FEEDER": "process",
        },
        tmp_path / "worker.log",
    )
    workload = make_workload(3000, seed=17)
    bus = SqliteLogBus(bus_url)
    await bus.start()
    store = SqliteEventStore(store_path)
    try:
        worker.start()
        await worker.wait_ready()
        await store.start()
        assert worker.process is not None
        (first,) = feeder_pids(worker.process.pid)
        await bus.publish(COMMANDS_TOPIC, workload.seeds)
        await eventually(lambda: all_processed(store, [e.id for e in workload.seeds]))
        for start in range(0, len(workload.commands), 500):
            await bus.publish(COMMANDS_TOPIC, workload.commands[start : start + 500])
        os.kill(first, signal.SIGKILL)
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{worker.port}/readyz"

            async def not_ready() -> bool:
                return (await client.get(url)).status_code == 503

            async def replaced() -> bool:
                pids = feeder_pids(worker.process.pid)  # type: ignore[union-attr]
                return (
                    bool(pids) and first not in pids and (await client.get(url)).status_code == 200
                )

            await eventually(not_ready, within=5)
            # A fresh interpreter on a loaded 2-core machine: allow it time to import and bind.
            await eventually(replaced, within=45)
        await eventually(lambda: all_processed(store, [e.id for e in workload.commands]))

        async def feeder_metrics_shown() -> bool:
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{worker.port}/metrics")).text
            return any(
                line.startswith("messaging_messages_total{")
                and 'outcome="acked"' in line
                and 'process="feeder"' in line
                and float(line.rsplit(" ", 1)[1]) > 0
                for line in text.splitlines()
            )

        await eventually(feeder_metrics_shown, within=10)  # the child's metrics, forwarded
        worker.terminate_gracefully()
        await assert_exactly_once(store, workload)
        log = worker.log.read_text()
        assert "inventory.feeder_died" in log
        # On SIGTERM the replacement feeder got its EOF and exited by itself: it was not left
        # running until the writer's stop timeout killed it.
        assert "inventory.feeder_killed_at_stop" not in log
    finally:
        worker.kill()
        await store.close()
        await bus.close()
