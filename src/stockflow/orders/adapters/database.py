"""The orders database: engines from a URL, SQLite's transaction rules, alembic at start-up.

``memory://`` (tests), ``sqlite:///<path>`` (embedded; aiosqlite) and ``postgresql://…``
(distributed; asyncpg). SQLite gets WAL, ``synchronous=FULL`` (a commit is on disk before it
is acknowledged) and ``BEGIN IMMEDIATE`` for every write transaction, so a transaction that
reads an order and then changes it holds the write lock from its first read: no lost update,
no "database is locked" half-way. Reads use a second engine with deferred transactions, so
they never wait for the writer (WAL readers see the last commit).

:func:`migrate` brings the schema to the newest alembic revision; on PostgreSQL it first takes
an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["MIGRATIONS", "Database", "database_for", "migrate"]

MIGRATIONS: Final = Path(__file__).with_name("migrations")
_MIGRATION_LOCK: Final = 0x0_5F0C_F10E  # pg_advisory_xact_lock key: "orders migrations"


@dataclass(frozen=True)
class Database:
    """The engines of one orders database: ``writer`` for transactions that change state,
    ``reader`` for queries (the same engine on PostgreSQL)."""

    writer: AsyncEngine
    reader: AsyncEngine
    dialect: str
    temporary: Path | None = None

    @property
    def serialized(self) -> bool:
        """Whether write transactions run one at a time (SQLite's single writer)."""
        return self.dialect == "sqlite"

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)


def database_for(url: str) -> Database:
    """Engines for ``memory://``, ``sqlite:///<path>`` or ``postgresql://…`` (nothing connects yet).

    Raises:
        ValueError: another scheme.
    """
    scheme = urlsplit(url).scheme
    if scheme in {"memory", "sqlite"}:
        # memory://: a throwaway file (SQLite's :memory: is one connection, not a database
        # that a writer and readers can share); removed by dispose().
        temporary = Path(tempfile.mkdtemp(prefix="orders-")) if scheme == "memory" else None
        path = (
            temporary / "orders.sqlite3"
            if temporary is not None
            else Path(url.removeprefix("sqlite:///"))
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0)
        reader = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=4)
        _sqlite_rules(writer, immediate=True)
        _sqlite_rules(reader, immediate=False)
        return Database(writer, reader, "sqlite", temporary)
    if scheme in {"postgresql", "postgres"}:
        rest = url.split("://", 1)[1]
        engine = create_async_engine(
            f"postgresql+asyncpg://{rest}", pool_size=10, max_overflow=10, pool_pre_ping=True
        )
        return Database(engine, engine, "postgresql")
    raise ValueError(
        f"unsupported database URL {url!r}: use memory://, sqlite:///… or postgresql://…"
    )


def _sqlite_rules(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        # SQLAlchemy, not the driver, decides when transactions begin (the pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 10000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic(connection: Connection, revision: str, down: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


async def migrate(database: Database, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade the schema to *revision* (the newest by default), in one transaction; with
    *down*, downgrade to it instead (``"base"``: no tables)."""
    async with database.writer.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        await connection.run_sync(_alembic, revision, down)
