"""Fixtures of the kit's tests: SQLAlchemy engines on SQLite (a temporary file) and PostgreSQL.

``sqlalchemy_url`` runs a test twice: on SQLite through aiosqlite, and on the session's
throwaway PostgreSQL database (``postgres_url``) through asyncpg, marked ``integration``.
SQLite engines get the setup the README recommends: WAL, a busy timeout, and SQLAlchemy
emitting ``BEGIN IMMEDIATE`` instead of the sqlite3 module's implicit transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def sqlalchemy_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An async SQLAlchemy URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.sqlite3'}"
    postgres_url: str = request.getfixturevalue("postgres_url")
    return "postgresql+asyncpg" + postgres_url.removeprefix("postgresql")


@pytest.fixture
async def open_sqlalchemy_engine() -> AsyncIterator[Callable[[str], AsyncEngine]]:
    """A factory of engines (SQLite ones set up for transactions); all disposed of after."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    engines: list[AsyncEngine] = []

    def open_engine(url: str) -> AsyncEngine:
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_connected)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        engines.append(engine)
        return engine

    yield open_engine
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def sqlalchemy_engine(
    sqlalchemy_url: str, open_sqlalchemy_engine: Callable[[str], AsyncEngine]
) -> AsyncEngine:
    """An engine on :func:`sqlalchemy_url` (both dialects)."""
    return open_sqlalchemy_engine(sqlalchemy_url)


def _sqlite_connected(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy begins transactions, not sqlite3
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
