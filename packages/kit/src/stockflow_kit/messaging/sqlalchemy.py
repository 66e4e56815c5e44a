"""The outbox and the inbox on SQLAlchemy 2 (asyncio): SQLite (aiosqlite) or PostgreSQL (asyncpg).

For a state-stored service whose state is in SQLAlchemy tables: declare the outbox and inbox
tables on the service's own ``MetaData`` (so its Alembic migrations create them), then write
outbox rows and processed ids on the connection or session of the state change, **inside its
transaction**::

    metadata = MetaData()
    outbox = SqlAlchemyOutbox(engine, outbox_table(metadata), name="orders")
    inbox = SqlAlchemyInbox(inbox_table(metadata), name="orders")

    async with AsyncSession(engine) as session, session.begin():
        session.add(order)
        await outbox.add(session, "orders.events", [placed])

    async with engine.begin() as conn:           # a consumer's batch
        for delivery in await inbox.filter_new(conn, batch):
            ...                                  # apply its effect on conn
    await subscription.ack(batch)                # after the commit

:class:`SqlAlchemyOutbox` is an :class:`~stockflow_kit.messaging.outbox.Outbox`: an
:class:`~stockflow_kit.messaging.outbox_relay.OutboxRelay` drains it on the engine, in short
transactions of its own. The semantics are those of :mod:`~stockflow_kit.messaging.outbox` and
:mod:`~stockflow_kit.messaging.inbox`; times are stored as Unix seconds (``Float``) from the
process's clock on both dialects. SQLite needs 3.35 or newer (``RETURNING``).

This module needs the kit's ``sqlalchemy`` extra; nothing else in the kit imports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from stockflow_kit._sqlalchemy_conflicts import (
    SqlConnection,
    connection_of,
    insert_skipping_conflicts,
)
from stockflow_kit.messaging.bus import Delivery
from stockflow_kit.messaging.envelope import Envelope, encode_envelope
from stockflow_kit.messaging.inbox import _id_of, _NewMessages
from stockflow_kit.messaging.outbox import OutboxRecord, _headers_now, _record
from stockflow_kit.messaging.retention import RetentionJob

__all__ = [
    "SqlAlchemyInbox",
    "SqlAlchemyOutbox",
    "SqlConnection",
    "inbox_table",
    "outbox_table",
    "sqlalchemy_inbox_purge",
]

_M = TypeVar("_M", Delivery, Envelope)


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """Declare the outbox table on *metadata* and return it.

    Columns: ``seq`` (``BIGINT`` primary key, autoincrement; ``INTEGER`` on SQLite, so it is
    the rowid), ``topic`` (text), ``created_at`` (``Float``, Unix seconds), ``headers``
    (binary, nullable: JSON of the stored headers and trace context), ``body`` (binary: the
    encoded envelope).
    """
    return Table(
        name,
        metadata,
        Column(
            "seq",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("topic", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("headers", LargeBinary, nullable=True),
        Column("body", LargeBinary, nullable=False),
    )


def inbox_table(metadata: MetaData, name: str = "inbox") -> Table:
    """Declare the inbox table on *metadata* and return it.

    Columns: ``msg_id`` (text primary key), ``processed_at`` (``Float``, Unix seconds), with
    the index ``<name>_processed_at`` for purges. ``WITHOUT ROWID`` on SQLite.
    """
    return Table(
        name,
        metadata,
        Column("msg_id", Text, primary_key=True),
        Column("processed_at", Float, nullable=False),
        Index(f"{name}_processed_at", "processed_at"),
        sqlite_with_rowid=False,
    )


class SqlAlchemyOutbox:
    """An outbox table (from :func:`outbox_table`) written in the caller's transaction.

    Args:
        engine: The engine the relay side reads and deletes on (:meth:`claim`,
            :meth:`remove`, :meth:`backlog`, each in a short transaction of its own).
        table: The outbox table.
        name: The name in metrics and logs; the table's name when omitted.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        name: str | None = None,
        reader: AsyncEngine | None = None,
    ) -> None:
        self.engine, self.table = engine, table
        self.reader = reader if reader is not None else engine
        """Where :meth:`claim` and :meth:`backlog` read: a second engine keeps the relay's
        polls off a scarce writer connection (SQLite's one writer with ``BEGIN IMMEDIATE``)."""
        self._name = name or table.name

    @property
    def name(self) -> str:
        """The outbox's name in metrics and logs."""
        return self._name

    async def add(
        self,
        conn: SqlConnection,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Store *envelopes* for *topic* on *conn*, inside the caller's transaction.

        Nothing is committed here: the rows commit or roll back with the caller's state
        change. The current trace context is stored with *headers*, so the relay publishes
        under it. On a session, the rows are written on its connection at once (pending ORM
        objects are flushed at its commit, as usual).
        """
        if not envelopes:
            return
        raw, now = _headers_now(headers), time.time()
        connection = await connection_of(conn, self.table)
        await connection.execute(
            self.table.insert(),
            [
                {"topic": topic, "created_at": now, "headers": raw, "body": encode_envelope(e)}
                for e in envelopes
            ],
        )

    async def add_groups(
        self,
        conn: SqlConnection,
        groups: Sequence[tuple[str, Sequence[Envelope], Mapping[str, str] | None]],
    ) -> None:
        """:meth:`add` for several ``(topic, envelopes, headers)`` groups in ONE statement, in
        order: a group commit's messages, each group with the trace context of the request
        that caused it (captured there, in *headers*, since the committing task runs in
        another context)."""
        now = time.time()
        rows = [
            {"topic": topic, "created_at": now, "headers": raw, "body": encode_envelope(e)}
            for topic, envelopes, headers in groups
            if envelopes
            for raw in (_headers_now(headers),)
            for e in envelopes
        ]
        if rows:
            connection = await connection_of(conn, self.table)
            await connection.execute(self.table.insert(), rows)

    async def claim(self, limit: int) -> Sequence[OutboxRecord]:
        """Return up to *limit* stored records, oldest first."""
        c = self.table.c
        query = select(c.seq, c.topic, c.headers, c.body, c.created_at).order_by(c.seq).limit(limit)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(seq, topic, h, body, at) for seq, topic, h, body, at in rows]

    async def remove(self, records: Sequence[OutboxRecord]) -> None:
        """Delete *records* in one transaction."""
        if not records:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(self.table).where(self.table.c.seq.in_([r.seq for r in records]))
            )

    async def backlog(self) -> tuple[int, float]:
        """Return the number of stored records and the age in seconds of the oldest."""
        query = select(func.count(), func.min(self.table.c.created_at))
        async with self.reader.connect() as conn:
            count, oldest = (await conn.execute(query)).one()
        return int(count), max(time.time() - oldest, 0.0) if oldest is not None else 0.0


class SqlAlchemyInbox(_NewMessages):
    """Processed message ids in an inbox table (from :func:`inbox_table`), written in the
    caller's transaction.

    Args:
        table: The inbox table.
        name: The ``subscription`` label of the duplicate count; the table's name if omitted.
        registry: Prometheus registry (the default registry when ``None``).
    """

    def __init__(
        self, table: Table, *, name: str | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        super().__init__(name or table.name, registry)
        self.table = table

    async def filter_new(self, conn: SqlConnection, messages: Sequence[_M]) -> list[_M]:
        """Record the ids of *messages* and return those never seen before, in order.

        Run it inside the transaction that applies their effect; nothing is committed here.
        A second copy in the same batch is a duplicate. The ids are written by one
        ``INSERT … ON CONFLICT DO NOTHING RETURNING msg_id`` (SQLAlchemy sends a batch of
        more than 1000 distinct ids in pages of 1000): the ids it returns are the new ones.
        A concurrent transaction that recorded one of the ids and has not committed makes
        this wait for it, and then skip the id.
        """
        if not messages:
            return []
        now = time.time()
        ids = dict.fromkeys(_id_of(m) for m in messages)
        connection = await connection_of(conn, self.table)
        result = await connection.execute(
            insert_skipping_conflicts(connection, self.table).returning(self.table.c.msg_id),
            [{"msg_id": i, "processed_at": now} for i in ids],
        )
        return self._keep(messages, set(result.scalars().all()))

    async def purge(
        self, conn: SqlConnection, older_than: float, *, now: float | None = None
    ) -> int:
        """Forget ids processed more than *older_than* seconds before *now*; return how many.

        *now* is in Unix seconds (:func:`time.time` when ``None``). Nothing is committed here.
        """
        cutoff = (time.time() if now is None else now) - older_than
        connection = await connection_of(conn, self.table)
        result = await connection.execute(
            delete(self.table).where(self.table.c.processed_at < cutoff)
        )
        return result.rowcount


def sqlalchemy_inbox_purge(
    inbox: SqlAlchemyInbox, engine: AsyncEngine, *, window: float, name: str | None = None
) -> RetentionJob:
    """A retention job that calls :meth:`SqlAlchemyInbox.purge` in a transaction of its own.

    Schedule it with :class:`~stockflow_kit.messaging.retention.Retention`; *window* is in
    seconds (see :func:`~stockflow_kit.messaging.retention.check_retention_windows`). The job
    is named ``inbox_<table>`` unless *name* is given.
    """

    async def purge(now: float) -> int:
        async with engine.begin() as conn:
            return await inbox.purge(conn, window, now=now)

    return RetentionJob(name or f"inbox_{inbox.table.name}", window, purge)
