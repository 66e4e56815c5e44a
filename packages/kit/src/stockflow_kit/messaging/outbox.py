"""The transactional outbox: messages stored with the state change, published afterwards.

A service writes its state and its outgoing envelopes in **one** database transaction
(``outbox.add(conn, topic, envelopes)`` on the caller's connection, inside the caller's
transaction), and an :class:`~stockflow_kit.messaging.outbox_relay.OutboxRelay` publishes the stored rows in insertion order and
deletes them once the bus has confirmed. If the relay dies between publishing and deleting,
the rows are published again with the same envelope ids, and the bus drops the duplicates
within its dedupe window: nothing is lost, nothing is doubled.

Two stores: :class:`SqliteOutbox` (stdlib ``sqlite3`` connection) and :class:`PostgresOutbox`
(``asyncpg`` connection); on SQLAlchemy,
:class:`~stockflow_kit.messaging.sqlalchemy.SqlAlchemyOutbox`. The current trace context is
stored with each row, and the relay publishes under it, so the producer span joins the trace
of the request that caused it.

Run one relay per outbox for strict order. Several relays are safe (duplicates are dropped by
the bus, and each relay publishes in order) but add load.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

import msgspec
import structlog
from opentelemetry import propagate

from stockflow_kit.messaging.envelope import Envelope, decode_envelope, encode_envelope

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    PgConnection: TypeAlias = (
        asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    )

__all__ = ["Outbox", "OutboxRecord", "PostgresOutbox", "SqliteOutbox"]

_log = structlog.get_logger("stockflow_kit.messaging")
_encode_headers = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One stored message: its position, topic, envelope, headers and creation time (unix s)."""

    seq: int
    topic: str
    envelope: Envelope
    headers: Mapping[str, str]
    created_at: float


class Outbox(Protocol):
    """What :class:`OutboxRelay` needs from an outbox store."""

    @property
    def name(self) -> str:
        """The outbox's name in metrics and logs."""
        ...

    async def claim(self, limit: int) -> Sequence[OutboxRecord]:
        """Return up to *limit* stored records, oldest first."""
        ...

    async def remove(self, records: Sequence[OutboxRecord]) -> None:
        """Delete *records* (they were published)."""
        ...

    async def backlog(self) -> tuple[int, float]:
        """Return the number of stored records and the age in seconds of the oldest."""
        ...


def _checked(table: str) -> str:
    if not _IDENTIFIER.match(table):
        msg = f"not a plain SQL identifier: {table!r}"
        raise ValueError(msg)
    return table


def _headers_now(headers: Mapping[str, str] | None) -> bytes | None:
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return _encode_headers(carrier) if carrier else None


def _record(
    seq: int, topic: str, headers: bytes | None, body: bytes, created_at: float
) -> OutboxRecord:
    decoded = _decode_headers(headers) if headers else {}
    return OutboxRecord(seq, topic, decode_envelope(body), decoded, created_at)


class SqliteOutbox:
    """An outbox table in a SQLite database.

    Args:
        path: The database file; the relay side opens its own connection to it.
        table: The table name.
        name: The name in metrics and logs; *table* when omitted.
    """

    def __init__(self, path: str, *, table: str = "outbox", name: str | None = None) -> None:
        self.path, self.table = path, _checked(table)
        self._name = name or table
        self._conn: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        """The outbox's name in metrics and logs."""
        return self._name

    def create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the table if missing (on *conn*, in its current transaction if any)."""
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (seq INTEGER PRIMARY KEY,"
            " topic TEXT NOT NULL, created_at REAL NOT NULL, headers BLOB, body BLOB NOT NULL)"
        )

    def add(
        self,
        conn: sqlite3.Connection,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Store *envelopes* for *topic* on *conn*; the caller commits with its state change."""
        raw, now = _headers_now(headers), time.time()
        conn.executemany(
            f"INSERT INTO {self.table} (topic, created_at, headers, body) VALUES (?, ?, ?, ?)",
            [(topic, now, raw, encode_envelope(e)) for e in envelopes],
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 10000")
        return self._conn

    async def claim(self, limit: int) -> Sequence[OutboxRecord]:
        """Return up to *limit* stored records, oldest first."""
        rows = (
            self._connection()
            .execute(
                f"SELECT seq, topic, headers, body, created_at FROM {self.table}"
                " ORDER BY seq LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [_record(seq, topic, h, body, at) for seq, topic, h, body, at in rows]

    async def remove(self, records: Sequence[OutboxRecord]) -> None:
        """Delete *records* in one transaction."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(f"DELETE FROM {self.table} WHERE seq = ?", [(r.seq,) for r in records])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def backlog(self) -> tuple[int, float]:
        """Return the number of stored records and the age of the oldest."""
        count, oldest = (
            self._connection()
            .execute(f"SELECT count(*), min(created_at) FROM {self.table}")
            .fetchone()
        )
        return int(count), max(time.time() - oldest, 0.0) if oldest is not None else 0.0

    def close(self) -> None:
        """Close the relay-side connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresOutbox:
    """An outbox table in PostgreSQL.

    Args:
        pool: An ``asyncpg`` pool the relay side reads from (the writer uses its own
            connection in :meth:`add`).
        table: The table name.
        name: The name in metrics and logs; *table* when omitted.
    """

    def __init__(
        self, pool: asyncpg.Pool[asyncpg.Record], *, table: str = "outbox", name: str | None = None
    ) -> None:
        self.pool, self.table = pool, _checked(table)
        self._name = name or table

    @property
    def name(self) -> str:
        """The outbox's name in metrics and logs."""
        return self._name

    async def create_schema(self, conn: PgConnection) -> None:
        """Create the table if missing."""
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (seq BIGSERIAL PRIMARY KEY,"
            " topic TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),"
            " headers BYTEA, body BYTEA NOT NULL)"
        )

    async def add(
        self,
        conn: PgConnection,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Store *envelopes* on *conn*, inside the caller's transaction."""
        raw = _headers_now(headers)
        await conn.executemany(
            f"INSERT INTO {self.table} (topic, headers, body) VALUES ($1, $2, $3)",
            [(topic, raw, encode_envelope(e)) for e in envelopes],
        )

    async def claim(self, limit: int) -> Sequence[OutboxRecord]:
        """Return up to *limit* stored records, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT seq, topic, headers, body, extract(epoch FROM created_at)::float8 AS at"
            f" FROM {self.table} ORDER BY seq LIMIT $1",
            limit,
        )
        return [_record(r["seq"], r["topic"], r["headers"], r["body"], r["at"]) for r in rows]

    async def remove(self, records: Sequence[OutboxRecord]) -> None:
        """Delete *records* in one statement."""
        await self.pool.execute(
            f"DELETE FROM {self.table} WHERE seq = ANY($1::bigint[])", [r.seq for r in records]
        )

    async def backlog(self) -> tuple[int, float]:
        """Return the number of stored records and the age of the oldest."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n,"
            " coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS age"
            f" FROM {self.table}"
        )
        assert row is not None  # an aggregate always returns one row
        return int(row["n"]), max(float(row["age"]), 0.0)
