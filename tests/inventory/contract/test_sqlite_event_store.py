"""The event store contract, run against ``SqliteEventStore`` on a file in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.inventory.contract.event_store_contract import EventStoreContract

from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.service_layer.ports import EventStore, StockRow


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Callable[[], EventStore]:
        return lambda: SqliteEventStore(tmp_path / "inventory.sqlite3")


async def test_the_sqlite_file_is_left_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "inventory.sqlite3")
    await store.start()
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "inventory.sqlite3")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


CHILD = """
import asyncio, sys, time, uuid
from datetime import UTC, datetime
from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.service_layer.ports import CommitBatch, NewEvent, StockRow

async def main() -> None:
    store = SqliteEventStore(sys.argv[1])
    await store.start()
    for n in range(1, 4):
        event = NewEvent(stream_id="A", sequence=n, event_id=uuid.uuid4(), type="StockReceived",
                         data=b"{}", occurred_at=datetime.now(UTC))
        await store.commit(CommitBatch(events=[event], processed=[f"m-{n}"],
                                       stock=[StockRow(sku="A", on_hand=n, reserved=0, version=n)],
                                       processed_at=datetime.now(UTC)))
        print(f"acked {n}", flush=True)
    time.sleep(60)

asyncio.run(main())
"""


async def test_acknowledged_batches_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "inventory.sqlite3"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        acked = [(await asyncio.wait_for(child.stdout.readline(), 30)).decode() for _ in range(3)]
        assert acked == ["acked 1\n", "acked 2\n", "acked 3\n"]
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    store = SqliteEventStore(path)
    await store.start()
    try:
        assert await store.stream_version("A") == 3
        assert await store.processed(["m-1", "m-2", "m-3"]) == {"m-1", "m-2", "m-3"}
        assert await store.get_stock("A") == StockRow(sku="A", on_hand=3, reserved=0, version=3)
    finally:
        await store.close()
