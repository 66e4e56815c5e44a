"""Reading the orders service's database with the auditor's own SQL (invariant 5).

The layout is the orders service's storage contract: table ``orders`` with ``id``, ``status``,
``lines`` (JSON list of ``[sku, qty]`` pairs) and ``expires_at`` (unix seconds); nothing of
``stockflow.orders`` is imported. A database that does not exist at all (an inventory-only
data dir, e.g. after ``stockflow bench events``) raises :class:`NoOrdersDatabase`: invariant 5
is then reported as not checked, not as broken. One that exists without the table cannot be
audited (:class:`AuditSourceError`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Final

from stockflow.audit.orders import OrdersCheck
from stockflow.audit.sources import (
    PAGE_SIZE,
    AuditSourceError,
    MissingDatabase,
    connect_postgres,
    has_tables,
    redacted,
)

__all__ = ["NoOrdersDatabase", "read_orders_postgres", "read_orders_sqlite"]

_SELECT: Final = "SELECT id, status, lines, expires_at FROM {table} ORDER BY id"


class NoOrdersDatabase(Exception):
    """There is no orders database at the given place; the message says what was looked for."""


def read_orders_sqlite(path: Path, check: OrdersCheck) -> None:
    """Feed every order of the SQLite orders database at *path* to *check*, in one snapshot."""
    if not path.is_file():
        raise NoOrdersDatabase(f"{path} does not exist")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        raise AuditSourceError(f"{path} is not a readable SQLite database: {err}") from None
    try:
        if "orders" not in tables:
            raise AuditSourceError(
                f"{path} is not an orders database (no orders table);"
                " has the orders service run against it?"
            )
        conn.execute("BEGIN")
        cursor = conn.execute(_SELECT.format(table="orders"))
        while rows := cursor.fetchmany(PAGE_SIZE):
            for order_id, status, lines, expires_at in rows:
                check.add(order_id, status, lines, expires_at)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as err:
        raise AuditSourceError(f"reading {path} failed: {err}") from None
    finally:
        conn.close()


def read_orders_postgres(url: str, check: OrdersCheck, *, schema: str = "public") -> None:
    """Feed every order of the PostgreSQL orders database at *url* (table in *schema*)."""
    if not schema.isidentifier() or schema.lower() != schema:
        raise AuditSourceError(f"invalid schema name {schema!r}: a plain lower-case identifier")
    asyncio.run(_read_postgres(url, check, schema))


async def _read_postgres(url: str, check: OrdersCheck, schema: str) -> None:
    import asyncpg

    where = redacted(url)
    try:
        conn = await connect_postgres(url)
    except MissingDatabase:
        raise NoOrdersDatabase(f"database {where} does not exist") from None
    try:
        if not await has_tables(conn, schema, "orders"):
            raise AuditSourceError(
                f"{where} has no orders table in schema {schema!r}; has the orders service"
                " migrated it? (pass --orders-schema or check --orders-url)"
            )
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            query = _SELECT.format(table=f"{schema}.orders")
            async for order_id, status, lines, expires_at in conn.cursor(query, prefetch=1000):
                check.add(order_id, status, lines, expires_at)
    except asyncpg.PostgresError as err:
        raise AuditSourceError(f"reading {where} failed: {err}") from None
    finally:
        await conn.close()
