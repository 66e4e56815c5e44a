"""The orders service's alembic migrations, on SQLite and PostgreSQL (the shared contract)."""

from __future__ import annotations

from tests.migrations import MigrationsContract

from stockflow.orders.adapters.orm import METADATA, MIGRATIONS


class TestOrdersMigrations(MigrationsContract):
    name = "orders"
    metadata = METADATA
    migrations = MIGRATIONS
    tables = frozenset({"orders", "outbox", "inbox", "idempotency_keys"})
