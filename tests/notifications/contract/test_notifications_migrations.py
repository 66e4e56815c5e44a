"""The alembic migrations build exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from tests.servers import admin_execute

from stockflow.notifications.adapters.orm import METADATA, MIGRATIONS
from stockflow.platform.sql import Database, database_for, migrate


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), METADATA))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty notifications database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/notifications.sqlite3"
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    name = f"notifications_migrations_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_execute(postgres_url, f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = database_for(database_url)
    yield database
    await database.dispose()


async def test_the_newest_revision_matches_the_declared_tables(database: Database) -> None:
    await migrate(database, MIGRATIONS)
    async with database.writer.connect() as connection:
        assert await connection.run_sync(_differences) == []
        assert {
            "notifications",
            "webhooks",
            "deliveries",
            "delivery_attempts",
            "inbox",
            "alembic_version",
        } <= (await connection.run_sync(_tables))


async def test_migrating_twice_changes_nothing(database: Database) -> None:
    await migrate(database, MIGRATIONS)
    await migrate(database, MIGRATIONS)
    async with database.writer.connect() as connection:
        assert await connection.run_sync(_differences) == []


async def test_the_migrations_go_down_as_well_as_up(database: Database) -> None:
    await migrate(database, MIGRATIONS)
    await migrate(database, MIGRATIONS, "base", down=True)
    async with database.writer.connect() as connection:
        assert await connection.run_sync(_tables) <= {"alembic_version"}
