"""Every role suite of the event store, run against ``SqliteEventStore`` on a file in a temp dir;
plus what only SQLite has: WAL mode, a killed process, the migration of an old data dir."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.inventory.contract.checkpoints_contract import CheckpointsContract
from tests.inventory.contract.event_log_contract import EventLogContract
from tests.inventory.contract.event_store_contract import (
    batch,
    check_trace_context_added,
    new_event,
)
from tests.inventory.contract.idempotency_contract import IdempotencyRecordsContract, record
from tests.inventory.contract.processed_ids_contract import ProcessedIdsContract
from tests.inventory.contract.snapshots_contract import SnapshotsContract
from tests.inventory.contract.stock_projection_contract import StockProjectionContract

from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.service_layer.ports import EventStore, StockRow


class OnSqlite:
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> Callable[[], EventStore]:
        return lambda: SqliteEventStore(tmp_path / "inventory.sqlite3")


class TestSqliteEventLog(OnSqlite, EventLogContract):
    pass


class TestSqliteProcessedIds(OnSqlite, ProcessedIdsContract):
    pass


class TestSqliteSnapshots(OnSqlite, SnapshotsContract):
    pass


class TestSqliteCheckpoints(OnSqlite, CheckpointsContract):
    pass


class TestSqliteStockProjection(OnSqlite, StockProjectionContract):
    pass


class TestSqliteIdempotencyRecords(OnSqlite, IdempotencyRecordsContract):
    pass


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


RECORD_CHILD = """
import asyncio, sys, time, uuid
from datetime import UTC, datetime
from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.service_layer.ports import CommitBatch, IdempotencyRecord, NewEvent

async def main() -> None:
    store = SqliteEventStore(sys.argv[1])
    await store.start()
    event = NewEvent(stream_id="A", sequence=1, event_id=uuid.uuid4(), type="StockReceived",
                     data=b"{}", occurred_at=datetime.now(UTC))
    record = IdempotencyRecord(scope="s", key="k-1", request_hash="h1", status=201,
                               body=b'{"sku":"A"}', media_type="application/json",
                               created_at=1795000000.25)
    await store.commit(CommitBatch(events=[event], processed=["m-1"], idempotency=[record],
                                   processed_at=datetime.now(UTC)))
    print("acked", flush=True)
    time.sleep(60)

asyncio.run(main())
"""


async def test_a_record_committed_with_its_batch_survives_a_killed_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.sqlite3"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RECORD_CHILD, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"acked\n"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    store = SqliteEventStore(path)
    await store.start()
    try:
        assert await store.stream_version("A") == 1
        assert await store.get("s", "k-1") == record(
            scope="s", key="k-1", body=b'{"sku":"A"}', created_at=1795000000.25
        )
    finally:
        await store.close()


# The idempotency table of the release before scopes (every other table is unchanged).
UNSCOPED_TABLE = """
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID
"""


async def test_a_data_dir_of_the_unscoped_release_opens_and_keeps_its_responses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.sqlite3"
    store = SqliteEventStore(path)
    await store.start()
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP INDEX idempotency_by_time")
        db.execute("DROP TABLE idempotency")
        db.execute(UNSCOPED_TABLE)
        db.execute("INSERT INTO idempotency VALUES ('k-ok', 'h1', 201, x'7b7d')")
        db.execute("INSERT INTO idempotency VALUES ('k-bad', 'h2', 409, x'7b7d')")
    before = time.time()
    store = SqliteEventStore(path)
    await store.start()
    try:
        ok, bad = await store.get("", "k-ok"), await store.get("", "k-bad")
        assert ok is not None
        assert bad is not None
        assert (ok.request_hash, ok.status, ok.body, ok.media_type) == (
            "h1",
            201,
            b"{}",
            "application/json",
        )
        assert bad.media_type == "application/problem+json"
        assert before - 1 <= ok.created_at <= time.time() + 1
        scoped = record("k-ok", created_at=before)
        assert await store.put(scoped) == scoped
        assert await store.prune(time.time() + 2) == 3
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert {"idempotency", "idempotency_by_time"} <= indexes
        assert "idempotency_scoped" not in indexes


async def test_an_events_table_without_trace_context_gains_it_and_keeps_its_events(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.sqlite3"
    store = SqliteEventStore(path)
    await store.start()
    await store.commit(batch([new_event("A", 1)]))
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # the release before traceparent
        db.execute("ALTER TABLE events DROP COLUMN traceparent")
    await check_trace_context_added(lambda: SqliteEventStore(path))
