"""Reading the inventory's event log and stock projection with the auditor's own SQL.

The column layout is the inventory's published storage schema (``events``, ``stock``); nothing
of ``stockflow.inventory`` is imported. Every source reads in one snapshot (a read transaction),
so the events and the projection it compares are consistent, and streams the events by
position in pages so memory stays flat however long the log is.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from stockflow.audit.fold import AuditFold
from stockflow.audit.report import Check, Violation

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "PAGE_SIZE",
    "AuditSourceError",
    "MissingDatabase",
    "connect_postgres",
    "has_tables",
    "read_postgres",
    "read_sqlite",
    "redacted",
    "sqlite_path_of",
]

PAGE_SIZE: Final = 20_000
_DUPLICATES: Final = 50


class AuditSourceError(Exception):
    """The data cannot be read; the message says what to do."""


class MissingDatabase(AuditSourceError):
    """The PostgreSQL server answers, but the database of the URL does not exist."""


def sqlite_path_of(url: str) -> Path:
    """The file of a ``sqlite:///<path>`` URL."""
    return Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))


def _open_sqlite(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AuditSourceError(
            f"{path} does not exist: point --data-dir at the directory holding the"
            " inventory's inventory.sqlite3 (or pass --event-store-url)"
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        raise AuditSourceError(f"{path} is not a readable SQLite database: {err}") from None
    missing = {"events", "stock"} - tables
    if missing:
        conn.close()
        raise AuditSourceError(
            f"{path} is not an inventory event store (no {', '.join(sorted(missing))} table);"
            " has the inventory run against it?"
        )
    return conn


def read_sqlite(path: Path, fold: AuditFold) -> None:
    """Fold every event of the SQLite store at *path*, then its projection, in one snapshot."""
    conn = _open_sqlite(path)
    try:
        conn.execute("BEGIN")
        for rows in _pages(
            conn.execute(
                "SELECT position, stream_id, sequence, type, data FROM events ORDER BY position"
            )
        ):
            for position, stream, sequence, kind, data in rows:
                fold.add(position, stream, sequence, kind, data)
        for event_id, count in conn.execute(
            "SELECT lower(hex(event_id)), count(*) FROM events GROUP BY event_id"
            f" HAVING count(*) > 1 LIMIT {_DUPLICATES}"
        ):
            fold.report(_duplicate(event_id, count))
        fold.finish(conn.execute("SELECT sku, on_hand, reserved, version FROM stock"))
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as err:
        raise AuditSourceError(f"reading {path} failed: {err}") from None
    finally:
        conn.close()


def _pages(cursor: sqlite3.Cursor) -> Iterator[list[tuple[int, str, int, str, bytes]]]:
    while rows := cursor.fetchmany(PAGE_SIZE):
        yield rows


def _duplicate(event_id: str, count: int) -> Violation:
    return Violation(Check.EVENT_IDS, f"event id {event_id} appears {count} times")


def read_postgres(url: str, fold: AuditFold, *, schema: str = "inventory") -> None:
    """Fold every event of the PostgreSQL store at *url* (tables in *schema*)."""
    if not schema.isidentifier() or schema.lower() != schema:
        raise AuditSourceError(f"invalid schema name {schema!r}: a plain lower-case identifier")
    asyncio.run(_read_postgres(url, fold, schema))


def redacted(url: str) -> str:
    """*url* without its credentials, for messages."""
    return urlsplit(url)._replace(netloc=urlsplit(url).hostname or "").geturl()


async def connect_postgres(url: str) -> asyncpg.Connection:
    """A connection to *url*; :class:`AuditSourceError` when it cannot be made."""
    import asyncpg

    try:
        return await asyncpg.connect(url, timeout=10)
    except asyncpg.InvalidCatalogNameError as err:
        raise MissingDatabase(f"cannot connect to {redacted(url)}: {err}") from None
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        raise AuditSourceError(
            f"cannot connect to {redacted(url)}: {err}; is PostgreSQL running and the URL right?"
        ) from None


async def has_tables(conn: asyncpg.Connection, schema: str, *tables: str) -> bool:
    """Whether every one of *tables* exists in *schema*."""
    found = await conn.fetchval(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = $1 AND table_name = any($2::text[])",
        schema,
        list(tables),
    )
    return bool(found == len(tables))


async def _read_postgres(url: str, fold: AuditFold, schema: str) -> None:
    import asyncpg

    where = redacted(url)
    conn = await connect_postgres(url)
    try:
        if not await has_tables(conn, schema, "events", "stock"):
            raise AuditSourceError(
                f"{where} has no inventory event store in schema {schema!r}"
                " (tables events and stock); pass --schema or check the URL"
            )
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            after = 0
            while True:
                rows = await conn.fetch(
                    f"SELECT position, stream_id, sequence, type, data FROM {schema}.events"
                    " WHERE position > $1 ORDER BY position LIMIT $2",
                    after,
                    PAGE_SIZE,
                )
                if not rows:
                    break
                for position, stream, sequence, kind, data in rows:
                    fold.add(position, stream, sequence, kind, data)
                after = rows[-1][0]
            for event_id, count in await conn.fetch(
                f"SELECT event_id::text, count(*) FROM {schema}.events GROUP BY event_id"
                f" HAVING count(*) > 1 LIMIT {_DUPLICATES}"
            ):
                fold.report(_duplicate(event_id, count))
            stock = await conn.fetch(f"SELECT sku, on_hand, reserved, version FROM {schema}.stock")
            fold.finish((r[0], r[1], r[2], r[3]) for r in stock)
    except asyncpg.PostgresError as err:
        raise AuditSourceError(f"reading {where} failed: {err}") from None
    finally:
        await conn.close()
