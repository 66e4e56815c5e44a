"""The Idempotency-Key store on SQLAlchemy 2 (asyncio): SQLite (aiosqlite) or PostgreSQL (asyncpg).

The shape of the SQL stores of :mod:`~stockflow_kit.http.idempotency`: declare the table on
the service's own ``MetaData`` (so its Alembic migrations create it), write a record with
:meth:`SqlAlchemyIdempotencyStore.add` on the connection or session of the effect, **inside
its transaction**, and let :class:`~stockflow_kit.http.idempotency.Idempotency` use the store
(``get``/``put``/``prune`` run on the engine, each in a transaction of its own)::

    metadata = MetaData()
    store = SqlAlchemyIdempotencyStore(engine, idempotency_table(metadata))

    async with engine.begin() as conn:
        await conn.execute(receipts.insert().values(sku=sku, qty=qty))
        if not await store.add(conn, ctx.record(201, answer)):
            raise KeyTakenError  # rolls the effect back; answer from the stored record

This module needs the kit's ``sqlalchemy`` extra; ``stockflow_kit.http`` does not import it.
SQLite needs 3.35 or newer (``RETURNING``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ColumnElement

from stockflow_kit._sqlalchemy_conflicts import (
    SqlConnection,
    connection_of,
    insert_skipping_conflicts,
)
from stockflow_kit.http._idempotency_sql import _COLUMNS, _put_in_two_steps, _record, _values
from stockflow_kit.http._idempotency_store import IdempotencyRecord

__all__ = ["SqlAlchemyIdempotencyStore", "SqlConnection", "idempotency_table"]


def idempotency_table(metadata: MetaData, name: str = "idempotency_keys") -> Table:
    """Declare the Idempotency-Key table on *metadata* and return it.

    The columns of the SQL stores: ``scope``, ``key``, ``request_hash``, ``status``
    (integer), ``media_type``, ``body`` (binary), ``created_at`` (``Float``, Unix seconds),
    primary key ``(scope, key)``, index ``<name>_created_at`` for prunes; ``WITHOUT ROWID``
    on SQLite.
    """
    return Table(
        name,
        metadata,
        Column("scope", Text, nullable=False),
        Column("key", Text, nullable=False),
        Column("request_hash", Text, nullable=False),
        Column("status", Integer, nullable=False),
        Column("media_type", Text, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", Float, nullable=False),
        PrimaryKeyConstraint("scope", "key"),
        Index(f"{name}_created_at", "created_at"),
        sqlite_with_rowid=False,
    )


_NAMES: Final = tuple(_COLUMNS.split(", "))  # the SQL stores' order, as _values and _record use


def _columns(table: Table) -> list[ColumnElement[Any]]:
    return [table.c[name] for name in _NAMES]


class SqlAlchemyIdempotencyStore:
    """Idempotency records in a table from :func:`idempotency_table`.

    An :class:`~stockflow_kit.http.idempotency.IdempotencyStore` that can also write a record
    in the caller's transaction (:meth:`add`).

    Args:
        engine: The engine of :meth:`get`, :meth:`put` and :meth:`prune` (the engine of your
            state, so :meth:`add` can write in the transaction of the effect). It is the
            caller's: :meth:`close` leaves it open.
        table: The table.
    """

    def __init__(
        self, engine: AsyncEngine, table: Table, *, reader: AsyncEngine | None = None
    ) -> None:
        self.engine, self.table = engine, table
        self.reader = reader if reader is not None else engine
        """Where :meth:`get` reads: pass a second engine when the writer's connections are
        scarce (SQLite's one writer with ``BEGIN IMMEDIATE``), so a lookup never waits for,
        or holds, the write lock."""

    async def add(self, conn: SqlConnection, record: IdempotencyRecord) -> bool:
        """Write *record* on *conn*, inside the caller's transaction; nothing is committed.

        A concurrent transaction that wrote the same (scope, key) and has not committed yet
        makes this wait for it (the primary key), so exactly one of them writes.

        Returns:
            ``True`` if it was written; ``False`` if its (scope, key) already has a record
            (kept unchanged): then roll back the effect, which an earlier request with this
            key already applied, and answer with the stored record.
        """
        connection = await connection_of(conn, self.table)
        statement = (
            insert_skipping_conflicts(connection, self.table)
            .values(dict(zip(_NAMES, _values(record), strict=True)))
            .returning(self.table.c.key)
        )
        return (await connection.execute(statement)).first() is not None

    async def add_many(
        self, conn: SqlConnection, records: Sequence[IdempotencyRecord]
    ) -> list[bool]:
        """:meth:`add` for many records in ONE statement (a group commit's answers): for each
        record, in order, whether it was written (``False``: its key was taken, or it repeats
        an earlier record of *records*)."""
        if not records:
            return []
        connection = await connection_of(conn, self.table)
        statement = (
            insert_skipping_conflicts(connection, self.table)
            .values([dict(zip(_NAMES, _values(r), strict=True)) for r in records])
            .returning(self.table.c.scope, self.table.c.key)
        )
        written = {(row.scope, row.key) for row in await connection.execute(statement)}
        added = []
        for record in records:
            added.append((record.scope, record.key) in written)
            written.discard((record.scope, record.key))
        return added

    async def start(self) -> None:
        """Create the table and its index if missing.

        With migrations (Alembic), run them first: this then finds the table and does nothing.
        """
        async with self.engine.begin() as conn:
            await conn.run_sync(self.table.create, checkfirst=True)

    async def close(self) -> None:
        """Do nothing: the engine is the caller's to dispose of."""

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """Return the record of *key* in *scope*, or ``None``."""
        c = self.table.c
        query = select(*_columns(self.table)).where(c.scope == scope, c.key == key)
        async with self.reader.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(row)

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store *record* unless its (scope, key) has one; return the stored one."""

        async def add_alone(record: IdempotencyRecord) -> bool:
            async with self.engine.begin() as conn:
                return await self.add(conn, record)

        return await _put_in_two_steps(record, add_alone, self.get)

    async def prune(self, older_than: float) -> int:
        """Delete the records created before *older_than* (Unix seconds); return how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(self.table).where(self.table.c.created_at < older_than)
            )
        return result.rowcount
