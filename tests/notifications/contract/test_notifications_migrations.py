"""The notifications service's alembic migrations, on SQLite and PostgreSQL (the shared contract)."""

from __future__ import annotations

from tests.migrations import MigrationsContract

from stockflow.notifications.adapters.orm import METADATA, MIGRATIONS


class TestNotificationsMigrations(MigrationsContract):
    name = "notifications"
    metadata = METADATA
    migrations = MIGRATIONS
    tables = frozenset({"notifications", "webhooks", "deliveries", "delivery_attempts", "inbox"})
