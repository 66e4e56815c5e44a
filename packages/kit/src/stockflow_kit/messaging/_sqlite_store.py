"""The synchronous SQL of :class:`~stockflow_kit.messaging.sqlite_log.SqliteLogBus`.

Schema (one SQLite file, WAL):

* ``bus_messages``: the append-only log. ``seq`` (rowid, global order), ``stream``, ``topic``,
  ``msg_id`` (the envelope id; NULL for dead letters, which are never deduped),
  ``published_at`` (unix seconds), ``headers`` (msgspec JSON or NULL) and ``body`` (the encoded
  envelope, one BLOB). A partial unique index on ``(stream, msg_id)`` is the dedupe: its window
  is the retention of the log (forever unless :meth:`SqliteStore.trim` removes old rows).
* ``bus_consumers``: one row per durable subscription ``(stream, durable)``, its ``pattern`` and
  ``cursor``: the highest ``seq`` it has claimed or skipped.
* ``bus_in_flight``: one row per delivery not yet acked: ``(consumer, seq)``, ``deliveries``,
  ``due`` (unix seconds of redelivery) and the last nak ``reason``. Acking deletes the row.

Every write runs in one ``BEGIN IMMEDIATE`` transaction (publish, claim, ack, nak), so several
processes can share the file; ``busy_timeout`` makes them queue for the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = ["Claim", "Row", "SqliteStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS bus_messages (
    seq INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    topic TEXT NOT NULL,
    msg_id TEXT,
    published_at REAL NOT NULL,
    headers BLOB,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS bus_messages_dedupe
    ON bus_messages (stream, msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS bus_messages_stream ON bus_messages (stream, seq);
CREATE TABLE IF NOT EXISTS bus_consumers (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    durable TEXT NOT NULL,
    pattern TEXT NOT NULL,
    cursor INTEGER NOT NULL DEFAULT 0,
    UNIQUE (stream, durable)
);
CREATE TABLE IF NOT EXISTS bus_in_flight (
    consumer INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,
    due REAL NOT NULL,
    reason TEXT,
    PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bus_in_flight_due ON bus_in_flight (consumer, due);
"""

Row: TypeAlias = tuple[int, str, int, "bytes | None", bytes, "str | None"]
"""A claimed delivery: seq, topic, deliveries, headers, body, last reason."""

DeadLetterRows: TypeAlias = Callable[
    [list[Row]], list[tuple[str, str, float, "bytes | None", bytes]]
]
"""Turns expired rows into dead-letter rows: stream, topic, published_at, headers, body."""

MessageRow: TypeAlias = tuple[str, str, "str | None", float, "bytes | None", bytes]
"""A row to append: stream, topic, msg_id, published_at, headers, body."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim transaction took.

    Args:
        deliveries: Rows handed out (redeliveries first, then new messages in log order).
        dead: Rows that exceeded ``max_deliver`` and were moved to the dead-letter stream.
        next_due: The earliest redelivery time still pending, or ``None``.
        cursor: The consumer's cursor after the claim.
    """

    deliveries: list[Row]
    dead: list[Row]
    next_due: float | None
    cursor: int


def connect(path: str, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open *path* in autocommit mode (transactions are explicit), WAL, with a busy timeout."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


class SqliteStore:
    """The bus tables on one connection. Not thread-safe: use it from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def create_schema(self) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn, "BEGIN IMMEDIATE")

    def _snapshot(self) -> _Transaction:
        return _Transaction(self.conn, "BEGIN")

    def append(self, rows: Iterable[MessageRow]) -> int:
        """Insert *rows*, skipping ids already in their stream; return how many were stored."""
        with self._transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO bus_messages"
                " (stream, topic, msg_id, published_at, headers, body) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self.conn.total_changes - before

    def bind(self, stream: str, durable: str, pattern: str) -> tuple[int, str]:
        """Create the consumer row if missing; return its id and the pattern it is bound to."""
        with self._transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO bus_consumers (stream, durable, pattern) VALUES (?, ?, ?)",
                (stream, durable, pattern),
            )
            row = self.conn.execute(
                "SELECT id, pattern FROM bus_consumers WHERE stream = ? AND durable = ?",
                (stream, durable),
            ).fetchone()
        return int(row[0]), str(row[1])

    def claim(
        self,
        consumer: int,
        stream: str,
        pattern: str,
        *,
        limit: int,
        now: float,
        ack_wait: float,
        max_deliver: int,
        dead_letter: DeadLetterRows,
    ) -> Claim:
        """Take up to *limit* deliveries for *consumer*: due redeliveries, then new messages."""
        conn, due = self.conn, now + ack_wait
        with self._transaction():
            expired: list[Row] = conn.execute(
                "SELECT f.seq, m.topic, f.deliveries, m.headers, m.body, f.reason"
                " FROM bus_in_flight f JOIN bus_messages m ON m.seq = f.seq"
                " WHERE f.consumer = ? AND f.due <= ? ORDER BY f.seq LIMIT ?",
                (consumer, now, limit),
            ).fetchall()
            dead = [row for row in expired if row[2] >= max_deliver]
            again = [(*row[:2], row[2] + 1, *row[3:]) for row in expired if row[2] < max_deliver]
            self._bury(consumer, dead, dead_letter)
            conn.executemany(
                "UPDATE bus_in_flight SET deliveries = deliveries + 1, due = ?"
                " WHERE consumer = ? AND seq = ?",
                [(due, consumer, row[0]) for row in again],
            )
            cursor = int(
                conn.execute(
                    "SELECT cursor FROM bus_consumers WHERE id = ?", (consumer,)
                ).fetchone()[0]
            )
            room = limit - len(again)
            fresh: list[Row] = []
            if room > 0:
                where, args = _topic_filter(stream, pattern)
                fresh = conn.execute(
                    "SELECT seq, topic, 1, headers, body, NULL FROM bus_messages"
                    f" WHERE stream = ? AND seq > ?{where} ORDER BY seq LIMIT ?",
                    (stream, cursor, *args, room),
                ).fetchall()
                newest: int | None
                if len(fresh) == room:
                    newest = fresh[-1][0]
                else:  # every matching row up to the end of the stream was taken
                    newest = conn.execute(
                        "SELECT max(seq) FROM bus_messages WHERE stream = ?", (stream,)
                    ).fetchone()[0]
                conn.executemany(
                    "INSERT INTO bus_in_flight (consumer, seq, deliveries, due) VALUES (?, ?, 1, ?)",
                    [(consumer, row[0], due) for row in fresh],
                )
                if newest is not None and newest > cursor:
                    cursor = int(newest)
                    conn.execute(
                        "UPDATE bus_consumers SET cursor = ? WHERE id = ?", (cursor, consumer)
                    )
            next_due = conn.execute(
                "SELECT min(due) FROM bus_in_flight WHERE consumer = ?", (consumer,)
            ).fetchone()[0]
        return Claim([*again, *fresh], dead, next_due, cursor)

    def dead_letter(
        self, consumer: int, seqs: Sequence[int], dead_letter: DeadLetterRows
    ) -> list[Row]:
        """Move the in-flight *seqs* to the dead-letter stream now; return the rows moved.

        Seqs no longer in flight (acked, or moved already) are skipped.
        """
        found: list[Row] = []
        with self._transaction():
            for seq in seqs:
                found += self.conn.execute(
                    "SELECT f.seq, m.topic, f.deliveries, m.headers, m.body, f.reason"
                    " FROM bus_in_flight f JOIN bus_messages m ON m.seq = f.seq"
                    " WHERE f.consumer = ? AND f.seq = ?",
                    (consumer, seq),
                ).fetchall()
            self._bury(consumer, found, dead_letter)
        return found

    def _bury(self, consumer: int, rows: list[Row], dead_letter: DeadLetterRows) -> None:
        """Append *rows* to the dead-letter stream and forget their in-flight rows (in the
        caller's transaction)."""
        if not rows:
            return
        self.conn.executemany(
            "INSERT INTO bus_messages (stream, topic, msg_id, published_at, headers, body)"
            " VALUES (?, ?, NULL, ?, ?, ?)",
            dead_letter(rows),
        )
        self.conn.executemany(
            "DELETE FROM bus_in_flight WHERE consumer = ? AND seq = ?",
            [(consumer, row[0]) for row in rows],
        )

    def ack(self, consumer: int, seqs: Sequence[int]) -> None:
        """Forget the in-flight rows of *seqs*."""
        with self._transaction():
            self.conn.executemany(
                "DELETE FROM bus_in_flight WHERE consumer = ? AND seq = ?",
                [(consumer, seq) for seq in seqs],
            )

    def nak(self, consumer: int, seqs: Sequence[int], due: float, reason: str | None) -> None:
        """Make *seqs* due at *due*, remembering *reason* (when given)."""
        with self._transaction():
            self.conn.executemany(
                "UPDATE bus_in_flight SET due = ?, reason = coalesce(?, reason)"
                " WHERE consumer = ? AND seq = ?",
                [(due, reason, consumer, seq) for seq in seqs],
            )

    def lag(self, consumer: int, stream: str, pattern: str) -> tuple[int, float | None]:
        """Return the pending count and the oldest ``published_at`` among them."""
        where, args = _topic_filter(stream, pattern)
        with self._snapshot():
            cursor = self.conn.execute(
                "SELECT cursor FROM bus_consumers WHERE id = ?", (consumer,)
            ).fetchone()[0]
            waiting, first = self.conn.execute(
                "SELECT count(*), min(published_at) FROM bus_messages"
                f" WHERE stream = ? AND seq > ?{where}",
                (stream, cursor, *args),
            ).fetchone()
            taken, oldest = self.conn.execute(
                "SELECT count(*), min(m.published_at) FROM bus_in_flight f"
                " JOIN bus_messages m ON m.seq = f.seq WHERE f.consumer = ?",
                (consumer,),
            ).fetchone()
        times = [t for t in (first, oldest) if t is not None]
        return int(waiting) + int(taken), min(times) if times else None

    def trim(self, cutoff: float) -> int:
        """Delete messages published before *cutoff* that no consumer still needs."""
        with self._transaction():
            before = self.conn.total_changes
            self.conn.execute(
                "DELETE FROM bus_messages WHERE published_at < ?"
                " AND seq <= coalesce((SELECT min(c.cursor) FROM bus_consumers c"
                "   WHERE c.stream = bus_messages.stream), seq)"
                " AND NOT EXISTS (SELECT 1 FROM bus_in_flight f WHERE f.seq = bus_messages.seq)",
                (cutoff,),
            )
            return self.conn.total_changes - before


class _Transaction:
    """*begin* … ``COMMIT`` (``ROLLBACK`` on error) as a context manager."""

    def __init__(self, conn: sqlite3.Connection, begin: str) -> None:
        self.conn, self.begin = conn, begin

    def __enter__(self) -> None:
        self.conn.execute(self.begin)

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _topic_filter(stream: str, pattern: str) -> tuple[str, tuple[object, ...]]:
    if pattern == f"{stream}.>":
        return "", ()
    if pattern.endswith(".>"):
        prefix = pattern[:-1]
        return " AND substr(topic, 1, ?) = ?", (len(prefix), prefix)
    return " AND topic = ?", (pattern,)
