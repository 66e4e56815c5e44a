"""The inbox: idempotent consumers by remembering processed message ids.

In the **same** transaction as the handler's effect, ``inbox.filter_new(conn, batch)`` records
the ids of a batch and returns only the messages never processed before, in order. Apply the
effect of those, commit, then ack the whole batch. A redelivery after a crash between commit and
ack finds every id recorded and changes nothing (``outcome="duplicate_skipped"``).

A batch costs one statement (``INSERT … ON CONFLICT DO NOTHING RETURNING`` on PostgreSQL,
``INSERT OR IGNORE … RETURNING`` over ``json_each`` on SQLite): the rows that come back are
the new ids. Concurrent consumers of the same id are safe: the second insert waits for the
first transaction and then returns nothing.

For SQLAlchemy, see :class:`~stockflow_kit.messaging.sqlalchemy.SqlAlchemyInbox`.

Ids are kept until :meth:`SqliteInbox.purge` / :meth:`PostgresInbox.purge` removes those
older than a window (scheduled by :mod:`~stockflow_kit.messaging.retention`); keep that window
longer than any copy can arrive: the bus's retention (a reset consumer replays what the log
still holds) plus the bus's ``ack_wait`` × ``max_deliver``, in practice days
(:func:`~stockflow_kit.messaging.retention.check_retention_windows`).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import msgspec
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging._telemetry import bus_metrics
from stockflow_kit.messaging.bus import Delivery
from stockflow_kit.messaging.envelope import Envelope

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    PgConnection: TypeAlias = (
        asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    )

__all__ = ["PostgresInbox", "SqliteInbox"]

_M = TypeVar("_M", Delivery, Envelope)
_encode_ids = msgspec.json.Encoder().encode
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _id_of(message: Delivery | Envelope) -> str:
    return message.envelope.id if isinstance(message, Delivery) else message.id


def _topic_of(message: Delivery | Envelope) -> str:
    return message.topic if isinstance(message, Delivery) else ""


class _NewMessages:
    """Keeps the never-seen messages of a batch; counts the others as ``duplicate_skipped``.

    The part every inbox store shares (the SQLAlchemy one too).
    """

    def __init__(self, name: str, registry: CollectorRegistry | None) -> None:
        self.name = name
        self._metrics = bus_metrics(registry)

    def _keep(self, messages: Sequence[_M], new_ids: set[str]) -> list[_M]:
        kept: list[_M] = []
        for message in messages:
            message_id = _id_of(message)
            if message_id in new_ids:
                new_ids.discard(message_id)  # a second copy in the same batch is a duplicate
                kept.append(message)
            else:
                self._metrics.count(_topic_of(message), self.name, "duplicate_skipped")
        return kept


class _InboxBase(_NewMessages):
    def __init__(
        self,
        *,
        table: str = "inbox",
        name: str | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if not _IDENTIFIER.match(table):
            msg = f"not a plain SQL identifier: {table!r}"
            raise ValueError(msg)
        super().__init__(name or table, registry)
        self.table = table


class SqliteInbox(_InboxBase):
    """Processed message ids in a SQLite table, written on the caller's connection.

    Args:
        table: The table name.
        name: The name used as ``subscription`` label of the duplicate count; *table* if omitted.
        registry: Prometheus registry (the default registry when ``None``).
    """

    def create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the table if missing."""
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table}"
            " (msg_id TEXT PRIMARY KEY, processed_at REAL NOT NULL) WITHOUT ROWID"
        )

    def filter_new(self, conn: sqlite3.Connection, messages: Sequence[_M]) -> list[_M]:
        """Record the ids of *messages* and return those never seen before, in order.

        Run it inside the transaction that applies their effect; nothing is committed here.
        """
        if not messages:
            return []
        rows = conn.execute(
            f"INSERT OR IGNORE INTO {self.table} (msg_id, processed_at)"
            " SELECT value, ? FROM json_each(?) RETURNING msg_id",
            (time.time(), _encode_ids([_id_of(m) for m in messages])),
        ).fetchall()
        return self._keep(messages, {row[0] for row in rows})

    def purge(
        self, conn: sqlite3.Connection, older_than: float, *, now: float | None = None
    ) -> int:
        """Forget ids processed more than *older_than* seconds before *now*; return how many.

        *now* is in Unix seconds (:func:`time.time` when ``None``). Nothing is committed here.
        """
        cutoff = (time.time() if now is None else now) - older_than
        cursor = conn.execute(f"DELETE FROM {self.table} WHERE processed_at < ?", (cutoff,))
        return cursor.rowcount


class PostgresInbox(_InboxBase):
    """Processed message ids in a PostgreSQL table, written on the caller's connection.

    Args:
        table: The table name.
        name: The name used as ``subscription`` label of the duplicate count; *table* if omitted.
        registry: Prometheus registry (the default registry when ``None``).
    """

    async def create_schema(self, conn: PgConnection) -> None:
        """Create the table if missing."""
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table}"
            " (msg_id TEXT PRIMARY KEY, processed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )

    async def filter_new(self, conn: PgConnection, messages: Sequence[_M]) -> list[_M]:
        """Record the ids of *messages* and return those never seen before, in order.

        Run it inside the transaction that applies their effect (``async with
        conn.transaction():``); nothing is committed here.
        """
        if not messages:
            return []
        rows = await conn.fetch(
            f"INSERT INTO {self.table} (msg_id) SELECT DISTINCT unnest($1::text[])"
            " ON CONFLICT DO NOTHING RETURNING msg_id",
            [_id_of(m) for m in messages],
        )
        return self._keep(messages, {row["msg_id"] for row in rows})

    async def purge(
        self, conn: PgConnection, older_than: float, *, now: float | None = None
    ) -> int:
        """Forget ids processed more than *older_than* seconds before *now*; return how many.

        *now* is in Unix seconds; the server's ``now()`` when ``None``.
        """
        status = await conn.execute(
            f"DELETE FROM {self.table} WHERE processed_at"
            " < coalesce(to_timestamp($2::float8), now()) - make_interval(secs => $1)",
            older_than,
            now,
        )
        return int(status.split()[-1])
