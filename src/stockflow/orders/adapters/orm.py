"""The orders database: its SQLAlchemy Core tables (the alembic migrations create them).

``orders`` holds one row per order; ``lines`` and ``reserved`` are JSON. Times are Unix
seconds (``DOUBLE PRECISION``), the same in SQLite and PostgreSQL, so the auditor reads them
without a driver-specific date type. The kit's outbox, inbox and Idempotency-Key tables live
in the same database, so an order's change, its events, the processed message ids and the
stored HTTP answer commit in one transaction.

Indexes: ``(customer_id, created_at, id)`` serves a customer's newest-first pages,
``(created_at, id)`` the staff's, and the partial-looking ``(status, expires_at)`` the saga
timer's "PENDING past its deadline" scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text

from stockflow_kit.http.sqlalchemy import idempotency_table
from stockflow_kit.messaging.sqlalchemy import inbox_table, outbox_table

__all__ = ["IDEMPOTENCY", "INBOX", "METADATA", "MIGRATIONS", "ORDERS", "OUTBOX"]

METADATA: Final = MetaData()
MIGRATIONS: Final = Path(__file__).with_name("migrations")
"""The alembic directory of the orders database."""

ORDERS: Final = Table(
    "orders",
    METADATA,
    Column("id", String(100), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("lines", JSON, nullable=False),
    Column("reserved", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Index("orders_by_customer", "customer_id", "created_at", "id"),
    Index("orders_by_time", "created_at", "id"),
    Index("orders_by_deadline", "status", "expires_at"),
)

OUTBOX: Final = outbox_table(METADATA, "outbox")
INBOX: Final = inbox_table(METADATA, "inbox")
IDEMPOTENCY: Final = idempotency_table(METADATA, "idempotency_keys")
