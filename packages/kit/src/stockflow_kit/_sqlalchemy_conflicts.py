"""What the kit's SQLAlchemy adapters share (``http`` and ``messaging`` import it, not each other).

The caller's connection, whether it passed an ``AsyncConnection`` or an ``AsyncSession``, and
an ``INSERT … ON CONFLICT DO NOTHING`` for its dialect (SQLite or PostgreSQL).
"""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

__all__ = ["SqlConnection", "connection_of", "insert_skipping_conflicts"]

SqlConnection: TypeAlias = AsyncConnection | AsyncSession
"""Where a caller's transaction runs: an ``AsyncConnection`` or an ``AsyncSession``."""


async def connection_of(conn: SqlConnection, table: Table) -> AsyncConnection:
    """Return the connection of *conn*'s transaction (a session's begins one if it has none).

    A session is asked for the connection it binds *table* to, so sessions with several
    binds work too.
    """
    if isinstance(conn, AsyncSession):
        return await conn.connection(bind_arguments={"clause": table})
    return conn


def insert_skipping_conflicts(
    conn: AsyncConnection, table: Table
) -> sqlite.Insert | postgresql.Insert:
    """An insert into *table* that skips the rows whose key is taken, in *conn*'s dialect.

    Raises:
        ValueError: The dialect is neither ``sqlite`` nor ``postgresql``.
    """
    match conn.dialect.name:
        case "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        case "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        case other:
            msg = f"the kit's SQLAlchemy adapters support sqlite and postgresql, not {other!r}"
            raise ValueError(msg)
