"""An event log and an orders database written with raw SQL (no inventory or orders code), so
every kind of damage can be made."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

# The inventory's storage layout, minus the unique constraints: the auditor must find
# duplicates itself rather than trust the database to have refused them.
SCHEMA = """
CREATE TABLE events (
    position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, sequence INTEGER NOT NULL,
    event_id BLOB NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL,
    occurred_at INTEGER NOT NULL, correlation_id TEXT, causation_id TEXT
);
CREATE TABLE processed (message_id TEXT PRIMARY KEY, processed_at INTEGER NOT NULL);
CREATE TABLE stock (
    sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL, reserved INTEGER NOT NULL,
    version INTEGER NOT NULL
);
"""


class EventLog:
    """Appends events to ``<dir>/inventory.sqlite3`` and keeps a naive fold for the projection."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "inventory.sqlite3"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.executescript(SCHEMA)
        self.sequences: dict[str, int] = {}
        self.stock: dict[str, list[int]] = {}

    def append(
        self,
        kind: str,
        sku: str,
        *,
        sequence: int | None = None,
        event_id: bytes | None = None,
        raw: bytes | None = None,
        **data: Any,
    ) -> bytes:
        seq = sequence if sequence is not None else self.sequences.get(sku, 0) + 1
        self.sequences[sku] = seq
        eid = event_id or uuid.uuid4().bytes
        payload = raw if raw is not None else msgspec.json.encode({"sku": sku, **data})
        self.conn.execute(
            "INSERT INTO events (stream_id, sequence, event_id, type, data, occurred_at)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            (sku, seq, eid, kind, payload),
        )
        on_hand, reserved, version = self.stock.setdefault(sku, [0, 0, 0])
        qty = int(data.get("qty", 0))
        if kind == "StockReceived":
            on_hand += qty
        elif kind == "StockAdjusted":
            on_hand += int(data["delta"])
        elif kind == "StockReserved":
            reserved += qty
        elif kind == "ReservationReleased":
            reserved -= qty
        elif kind == "StockShipped":
            on_hand -= qty
            reserved -= qty
        self.stock[sku] = [on_hand, reserved, version + 1]
        return eid

    def received(self, sku: str, qty: int) -> bytes:
        return self.append("StockReceived", sku, qty=qty, reference="po")

    def reserved(self, sku: str, order_id: str, qty: int) -> bytes:
        return self.append("StockReserved", sku, order_id=order_id, qty=qty)

    def released(self, sku: str, order_id: str, qty: int) -> bytes:
        return self.append("ReservationReleased", sku, order_id=order_id, qty=qty)

    def shipped(self, sku: str, order_id: str, qty: int) -> bytes:
        return self.append("StockShipped", sku, order_id=order_id, qty=qty)

    def project(self, **overrides: tuple[int, int, int]) -> None:
        """Write the stock rows of the naive fold, with *overrides* per SKU (served values)."""
        rows = {sku: tuple(values) for sku, values in self.stock.items()} | overrides
        self.conn.executemany(
            "INSERT OR REPLACE INTO stock (sku, on_hand, reserved, version) VALUES (?, ?, ?, ?)",
            [(sku, *values) for sku, values in rows.items()],
        )


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    log = EventLog(tmp_path)
    yield log
    log.conn.close()


# The orders service's storage contract (what its alembic migration creates).
ORDERS_SCHEMA = """
CREATE TABLE orders (
    id VARCHAR(100) PRIMARY KEY, customer_id VARCHAR(200) NOT NULL, status VARCHAR(16) NOT NULL,
    reason TEXT, lines JSON NOT NULL, reserved JSON NOT NULL, created_at FLOAT NOT NULL,
    updated_at FLOAT NOT NULL, expires_at FLOAT NOT NULL, version INTEGER NOT NULL
);
"""

NOW = 1_750_000_000.0
"""The audits' "now" (unix seconds): orders expire relative to it."""


def order_row(
    order_id: str,
    status: str,
    lines: list[tuple[str, int]] | str,
    expires_at: float,
) -> tuple[object, ...]:
    """One ``orders`` row; *lines* as pairs, or a raw JSON text (to damage it)."""
    if isinstance(lines, str):
        raw, skus = lines, "[]"
    else:
        raw = json.dumps([list(line) for line in lines])
        skus = json.dumps(sorted({sku for sku, _ in lines}))
    created = expires_at - 30
    return (order_id, "alice", status, None, raw, skus, created, created, expires_at, 1)


class OrdersDb:
    """``<dir>/orders.sqlite3`` with the orders table, filled row by row."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "orders.sqlite3"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.executescript(ORDERS_SCHEMA)

    def add(
        self,
        order_id: str,
        status: str,
        lines: list[tuple[str, int]] | str,
        *,
        expires_at: float = NOW + 30,
    ) -> None:
        self.conn.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            order_row(order_id, status, lines, expires_at),
        )


@pytest.fixture
def orders_db(tmp_path: Path) -> Iterator[OrdersDb]:
    db = OrdersDb(tmp_path)
    yield db
    db.conn.close()
