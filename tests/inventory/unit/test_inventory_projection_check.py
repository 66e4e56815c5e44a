"""``stockflow inventory rebuild-projection --check`` finds a projection row that lies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.domain.commands import ReceiveStock
from stockflow.inventory.service_layer.ports import CommitBatch, StockRow
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow.runtime.maintenance import rebuild_projection


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
    assert await rebuild_projection(url, check=True, echo=lines.append) == 0
    lie = StockRow(sku="A", on_hand=40, reserved=0, version=1)
    await store.commit(CommitBatch(stock=[lie], processed_at=datetime.now(UTC)))
    await store.close()
    assert await rebuild_projection(url, check=True, echo=lines.append) == 1
    assert "MISMATCH" in lines[-2]
