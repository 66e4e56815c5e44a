"""One contract for every SQLAlchemy service's alembic migrations, on SQLite and PostgreSQL:
the newest revision builds exactly the tables the code declares, migrating twice changes
nothing, and the migrations go down as well as up.

A service's test subclasses :class:`MigrationsContract` and sets ``name``, ``metadata``,
``migrations`` and ``tables`` (pytest collects the subclass, named ``Test…``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect
from tests.servers import admin_execute

from stockflow.platform.sql import Database, database_for, migrate

__all__ = ["MigrationsContract"]


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


class MigrationsContract:
    name: ClassVar[str]
    metadata: ClassVar[MetaData]
    migrations: ClassVar[Path]
    tables: ClassVar[frozenset[str]]
    """Tables the newest revision must have (besides ``alembic_version``)."""

    def _differences(self, connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), self.metadata))

    @pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
    def database_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        """An empty database: a SQLite file, or a PostgreSQL database dropped afterwards."""
        if request.param == "sqlite":
            yield f"sqlite:///{tmp_path}/{self.name}.sqlite3"
            return
        postgres_url: str = request.getfixturevalue("postgres_url")
        database = f"{self.name}_migrations_{uuid.uuid4().hex[:8]}"
        asyncio.run(admin_execute(postgres_url, f'CREATE DATABASE "{database}"'))
        try:
            yield postgres_url.rsplit("/", 1)[0] + f"/{database}"
        finally:
            drop = f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
            asyncio.run(admin_execute(postgres_url, drop))

    @pytest.fixture
    async def database(self, database_url: str) -> AsyncIterator[Database]:
        database = database_for(database_url)
        yield database
        await database.dispose()

    async def test_the_newest_revision_matches_the_declared_tables(
        self, database: Database
    ) -> None:
        await migrate(database, self.migrations)
        async with database.writer.connect() as connection:
            assert await connection.run_sync(self._differences) == []
            assert {*self.tables, "alembic_version"} <= await connection.run_sync(_tables)

    async def test_migrating_twice_changes_nothing(self, database: Database) -> None:
        await migrate(database, self.migrations)
        await migrate(database, self.migrations)
        async with database.writer.connect() as connection:
            assert await connection.run_sync(self._differences) == []

    async def test_the_migrations_go_down_as_well_as_up(self, database: Database) -> None:
        await migrate(database, self.migrations)
        await migrate(database, self.migrations, "base", down=True)
        async with database.writer.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
