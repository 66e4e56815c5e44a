"""``stockflow inventory rebuild-projection``: ``--check`` finds a projection row that lies, and
the rebuild replaces the projection (rows and checkpoint) by the fold of the log."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.inventory.projection_history import (
    GHOST,
    HISTORY,
    LIE,
    NOW,
    TRUE_A,
    TRUE_B,
    commit_folded,
)

from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.domain.commands import ReceiveStock
from stockflow.inventory.domain.events import StockReceived
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    EventStore,
    StockRow,
    StoredEvent,
)
from stockflow.inventory.service_layer.views import check_projection, rebuild_projection
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow.runtime.maintenance import rebuild_projection as rebuild_projection_command

Corrupt = Callable[[EventStore], Awaitable[None]]


async def corrupt_in_memory(store: EventStore) -> None:
    """Rows that no fold gives, committed without events; the checkpoint stays."""
    await store.commit(CommitBatch(stock=[LIE, GHOST], processed_at=NOW))


@pytest.fixture(params=["memory", "sqlite"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[EventStore, Corrupt]]:
    path = tmp_path / "inventory.sqlite3"

    async def corrupt_with_sql(store: EventStore) -> None:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE stock SET on_hand = 40, reserved = 0 WHERE sku = 'A'")
            db.execute("DELETE FROM stock WHERE sku = 'B'")
            db.execute("INSERT INTO stock VALUES ('Z', 1, 0, 1)")
            db.execute("UPDATE checkpoints SET position = 1 WHERE name = 'projection'")

    store: EventStore
    if request.param == "memory":
        store, corrupt = InMemoryEventStore(), corrupt_in_memory
    else:
        store, corrupt = SqliteEventStore(path), corrupt_with_sql
    await store.start()
    yield store, corrupt
    await store.close()


async def test_a_rebuild_replaces_a_corrupted_projection_and_its_checkpoint(
    backend: tuple[EventStore, Corrupt],
) -> None:
    store, corrupt = backend
    await commit_folded(store, HISTORY[:2])
    last = await commit_folded(store, HISTORY[2:])
    assert await check_projection(store) == []
    await corrupt(store)
    assert (LIE, TRUE_A) in await check_projection(store)
    assert (GHOST, None) in await check_projection(store)

    folded = await rebuild_projection(store)

    assert await check_projection(store) == []
    assert await store.all_stock() == folded.rows == [TRUE_A, TRUE_B]
    assert folded.position == last == (await store.read_all())[-1].position
    assert await store.projection_checkpoint() == last


async def test_an_empty_log_rebuilds_to_an_empty_projection(
    backend: tuple[EventStore, Corrupt],
) -> None:
    store, _ = backend
    await store.commit(CommitBatch(stock=[GHOST], processed_at=NOW))
    folded = await rebuild_projection(store)
    assert (folded.rows, folded.position) == ([], 0)
    assert await store.all_stock() == []
    assert await store.projection_checkpoint() == 0


class CommitsDuringTheFold(InMemoryEventStore):
    """A store where another writer commits an event just as the fold reaches the log's end."""

    def __init__(self) -> None:
        super().__init__()
        self.interfere = False

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        events = await super().read_all(after_position=after_position, limit=limit)
        if self.interfere and not events:
            self.interfere = False
            await commit_folded(self, [StockReceived(sku="B", qty=5)])
        return events


async def test_a_rebuild_is_refused_when_a_writer_commits_during_the_fold() -> None:
    store = CommitsDuringTheFold()
    await commit_folded(store, HISTORY)
    await corrupt_in_memory(store)
    store.interfere = True
    with pytest.raises(ConcurrencyError):
        await rebuild_projection(store)
    assert LIE in await store.all_stock()  # nothing replaced
    assert await store.projection_checkpoint() == (await store.read_all())[-1].position
    await rebuild_projection(store)  # the service stopped: now it goes through
    assert await check_projection(store) == []


async def test_the_command_rewrites_the_projection_of_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.sqlite3"
    url = f"sqlite:///{path}"
    store = SqliteEventStore(path)
    await store.start()
    last = await commit_folded(store, HISTORY)
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE stock SET reserved = 0 WHERE sku = 'A'")
        db.execute("UPDATE checkpoints SET position = 0 WHERE name = 'projection'")
    lines: list[str] = []

    assert await rebuild_projection_command(url, check=True, echo=lines.append) == 1
    assert await rebuild_projection_command(url, check=False, echo=lines.append) == 0
    assert lines[-1] == f"rebuilt 2 SKUs from the event log up to {last}"
    assert await rebuild_projection_command(url, check=True, echo=lines.append) == 0

    store = SqliteEventStore(path)
    await store.start()
    try:
        assert await store.all_stock() == [TRUE_A, TRUE_B]
        assert await store.projection_checkpoint() == last
    finally:
        await store.close()


async def test_the_projection_check_reports_a_row_that_differs_from_the_events(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    store = SqliteEventStore(tmp_path / "inventory.sqlite3")
    await store.start()
    writer = InventoryWriter(store, clock=lambda: datetime.now(UTC))
    await writer.load()
    writer.start()
    await writer.submit(ReceiveStock(sku="A", qty=4))
    await writer.stop()
    lines: list[str] = []
    assert await rebuild_projection_command(url, check=True, echo=lines.append) == 0
    lie = StockRow(sku="A", on_hand=40, reserved=0, version=1)
    await store.commit(CommitBatch(stock=[lie], processed_at=datetime.now(UTC)))
    await store.close()
    assert await rebuild_projection_command(url, check=True, echo=lines.append) == 1
    assert "MISMATCH" in lines[-2]
