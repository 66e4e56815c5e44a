"""The profiles service's alembic migrations, on SQLite and PostgreSQL (the shared contract)."""

from __future__ import annotations

from tests.migrations import MigrationsContract

from stockflow.profiles.adapters.orm import METADATA, MIGRATIONS


class TestProfilesMigrations(MigrationsContract):
    name = "profiles"
    metadata = METADATA
    migrations = MIGRATIONS
    tables = frozenset({"profiles", "outbox"})
