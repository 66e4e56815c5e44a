"""The SQL adapters of the Idempotency-Key store: SQLite (stdlib) and PostgreSQL (asyncpg).

Both have the shape of :mod:`stockflow_kit.messaging.outbox`: ``create_schema(conn)`` and
``add(conn, record)`` run on the **caller's** connection, inside the caller's transaction,
so a service commits the record with its effect; ``get``/``put``/``prune`` run on the
store's own connection (SQLite) or pool (PostgreSQL), each in its own transaction.

Table (the name is configurable; it must be a plain identifier)::

    scope TEXT, key TEXT, request_hash TEXT, status INTEGER, media_type TEXT,
    body BLOB/BYTEA, created_at REAL/DOUBLE PRECISION (Unix seconds),
    PRIMARY KEY (scope, key), INDEX <table>_created_at (created_at)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from stockflow_kit.http._idempotency_store import IdempotencyRecord, checked_table

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    PgConnection: TypeAlias = (
        asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    )

__all__ = ["PostgresIdempotencyStore", "SqliteIdempotencyStore"]

_COLUMNS: Final = "scope, key, request_hash, status, media_type, body, created_at"


def _values(record: IdempotencyRecord) -> tuple[str, str, str, int, str, bytes, float]:
    return (
        record.scope,
        record.key,
        record.request_hash,
        record.status,
        record.media_type,
        record.body,
        record.created_at,
    )


async def _put_in_two_steps(
    record: IdempotencyRecord,
    add_alone: Callable[[IdempotencyRecord], Awaitable[bool]],
    get: Callable[[str, str], Awaitable[IdempotencyRecord | None]],
) -> IdempotencyRecord:
    """``put`` of a store whose transactions are READ COMMITTED (or may be): *add_alone*
    (the record in a transaction of its own), then *get* if the key was taken.

    Two statements, not one: under READ COMMITTED a single statement's snapshot misses the
    row of a concurrent insert it waited for. A prune between the two (the record expired
    meanwhile) sends the loop round once more.
    """
    while True:
        if await add_alone(record):
            return record
        stored = await get(record.scope, record.key)
        if stored is not None:
            return stored


def _record(row: Iterable[Any]) -> IdempotencyRecord:
    # A sqlite3 row is a tuple, an asyncpg one a Record, a SQLAlchemy one a Row: all iterate
    # over the values.
    scope, key, request_hash, status, media_type, body, created_at = row
    return IdempotencyRecord(
        scope=scope,
        key=key,
        request_hash=request_hash,
        status=int(status),
        body=bytes(body),
        media_type=media_type,
        created_at=float(created_at),
    )


class SqliteIdempotencyStore:
    """Idempotency records in a SQLite table.

    Call :meth:`start` (or :meth:`create_schema` on your own connection) before use.

    Args:
        path: The database file; the store opens its own connection to it for
            :meth:`get`, :meth:`put` and :meth:`prune`. Use the file of your state, so
            :meth:`add` can write the record in the transaction of the effect.
        table: The table name; ``idempotency_keys`` by default.
    """

    def __init__(self, path: str, *, table: str = "idempotency_keys") -> None:
        self.path, self.table = path, checked_table(table)
        self._conn: sqlite3.Connection | None = None

    def create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the table and its index if missing (on *conn*, in its transaction if any)."""
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (scope TEXT NOT NULL, key TEXT NOT NULL,"
            " request_hash TEXT NOT NULL, status INTEGER NOT NULL, media_type TEXT NOT NULL,"
            " body BLOB NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (scope, key))"
            " WITHOUT ROWID"
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {self.table}_created_at ON {self.table} (created_at)"
        )

    def add(self, conn: sqlite3.Connection, record: IdempotencyRecord) -> bool:
        """Write *record* on *conn*, inside the caller's transaction; nothing is committed.

        Returns:
            ``True`` if it was written; ``False`` if its (scope, key) already has a record
            (kept unchanged): then roll back the effect, which an earlier request with this
            key already applied, and answer with the stored record.
        """
        cursor = conn.execute(
            f"INSERT OR IGNORE INTO {self.table} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            _values(record),
        )
        return cursor.rowcount == 1

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 10000")
        return self._conn

    async def start(self) -> None:
        """Open the store's connection and create the schema if missing."""
        self.create_schema(self._connection())

    async def close(self) -> None:
        """Close the store's connection (:meth:`get` and the others reopen it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """Return the record of *key* in *scope*, or ``None``."""
        row = (
            self._connection()
            .execute(
                f"SELECT {_COLUMNS} FROM {self.table} WHERE scope = ? AND key = ?", (scope, key)
            )
            .fetchone()
        )
        return None if row is None else _record(row)

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store *record* unless its (scope, key) has one; return the stored one."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # the insert and the read see one state
        try:
            added = self.add(conn, record)
            row = (
                None
                if added
                else conn.execute(
                    f"SELECT {_COLUMNS} FROM {self.table} WHERE scope = ? AND key = ?",
                    (record.scope, record.key),
                ).fetchone()
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return record if row is None else _record(row)

    async def prune(self, older_than: float) -> int:
        """Delete the records created before *older_than*; return how many."""
        cursor = self._connection().execute(
            f"DELETE FROM {self.table} WHERE created_at < ?", (older_than,)
        )
        return cursor.rowcount


class PostgresIdempotencyStore:
    """Idempotency records in a PostgreSQL table.

    Call :meth:`start` (or :meth:`create_schema` on your own connection) before use.

    Args:
        pool: An ``asyncpg`` pool for :meth:`get`, :meth:`put` and :meth:`prune`; the pool
            is the caller's, and :meth:`close` leaves it open. :meth:`add` uses the
            connection it is given instead.
        table: The table name; ``idempotency_keys`` by default.
    """

    def __init__(
        self, pool: asyncpg.Pool[asyncpg.Record], *, table: str = "idempotency_keys"
    ) -> None:
        self.pool, self.table = pool, checked_table(table)

    async def create_schema(self, conn: PgConnection) -> None:
        """Create the table and its index if missing."""
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (scope TEXT NOT NULL, key TEXT NOT NULL,"
            " request_hash TEXT NOT NULL, status INTEGER NOT NULL, media_type TEXT NOT NULL,"
            " body BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
            " PRIMARY KEY (scope, key))"
        )
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS {self.table}_created_at ON {self.table} (created_at)"
        )

    async def add(self, conn: PgConnection, record: IdempotencyRecord) -> bool:
        """Write *record* on *conn*, inside the caller's transaction; nothing is committed.

        A concurrent transaction that wrote the same (scope, key) and has not committed yet
        makes this wait for it (the primary key), so exactly one of them writes.

        Returns:
            ``True`` if it was written; ``False`` if its (scope, key) already has a record:
            then roll back the effect and answer with the stored record.
        """
        written = await conn.fetchval(
            f"INSERT INTO {self.table} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT DO NOTHING RETURNING true",
            *_values(record),
        )
        return written is True

    async def start(self) -> None:
        """Create the schema if missing."""
        async with self.pool.acquire() as conn:
            await self.create_schema(conn)

    async def close(self) -> None:
        """Do nothing: the pool is the caller's to close."""

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """Return the record of *key* in *scope*, or ``None``."""
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE scope = $1 AND key = $2", scope, key
        )
        return None if row is None else _record(row)

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store *record* unless its (scope, key) has one; return the stored one."""

        async def add_alone(record: IdempotencyRecord) -> bool:
            async with self.pool.acquire() as conn:
                return await self.add(conn, record)

        return await _put_in_two_steps(record, add_alone, self.get)

    async def prune(self, older_than: float) -> int:
        """Delete the records created before *older_than*; return how many."""
        status = await self.pool.execute(
            f"DELETE FROM {self.table} WHERE created_at < $1", older_than
        )
        return int(status.split()[-1])
