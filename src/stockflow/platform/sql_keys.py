"""Primary-key reads of a SQLite database on the event loop: ``sqlite3``, no thread, no engine.

A read through the reader engine (SQLAlchemy's async engine over aiosqlite) costs ~0.6 ms of
CPU for one row: the statement's cache key and execution context, the result, and about six
round trips to aiosqlite's thread (BEGIN, cursor, execute, fetch, close, ROLLBACK). The same
``SELECT … WHERE <primary key> = ?`` through ``sqlite3`` costs ~5 us, less than the thread
hop alone, so it is made on the loop itself: :class:`KeyLookup` (``stockflow bench http``,
docs/benchmarks.md).

It reads what the engines read: the same file, each ``SELECT`` its own read transaction
(autocommit), so it sees every transaction committed before it began (read-your-writes: a
write is committed before its answer is sent); in WAL mode a reader never waits for the
writer. Values pass through the columns' SQLAlchemy result processors (JSON decoded by the
engine's dialect), so a row reads as the engine's row would. The connection is read-only
(``query_only``) and never waits for a lock (``timeout=0``): when SQLite answers busy
(WAL recovery, a checkpoint in rollback-journal mode), :meth:`KeyLookup.get` raises
:class:`KeyLookupBusyError` and the caller reads through the engine as before.

PostgreSQL has no such lookup (:attr:`~stockflow.platform.sql.Database.keys` is ``None``):
its reads stay on the async engine.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Dialect, Table

__all__ = ["KeyLookup", "KeyLookupBusyError", "SqliteKeys", "read_by_key"]

T = TypeVar("T")


class KeyLookupBusyError(Exception):
    """SQLite could not read now (busy or locked); read through the engine instead."""


class SqliteKeys:
    """The read-only ``sqlite3`` connection of one database file, opened on first use.

    Args:
        path: The database file (the engines' own).
        dialect: The engines' dialect, whose result processors decode the values.
    """

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self._path = path
        self._dialect = dialect
        self._connection: sqlite3.Connection | None = None

    def lookup(self, table: Table) -> KeyLookup:
        """The primary-key read of *table* (a one-column primary key)."""
        return KeyLookup(self, table, self._dialect)

    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            # Only the event loop's thread uses it; autocommit: each SELECT its own snapshot.
            connection = sqlite3.connect(
                self._path, timeout=0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA query_only = ON")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


class KeyLookup:
    """``SELECT <every column> FROM <table> WHERE <primary key> = ?``, one row or ``None``."""

    def __init__(self, keys: SqliteKeys, table: Table, dialect: Dialect) -> None:
        (key,) = table.primary_key.columns
        columns = list(table.columns)
        quote = dialect.identifier_preparer.quote
        names = ", ".join(quote(c.name) for c in columns)
        self._sql = f"SELECT {names} FROM {quote(table.name)} WHERE {quote(key.name)} = ?"
        self._keys = keys
        processors: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
        self._processors = [(i, p) for i, p in enumerate(processors) if p is not None]
        # A row type of the table's column names (mypy wants them literal; they are not).
        self._row: Callable[..., Any] = namedtuple("KeyRow", [c.name for c in columns])  # type: ignore[misc]

    def get(self, key: object) -> Any:
        """The row of *key* (attributes named as the columns), ``None`` when there is none.

        Raises:
            KeyLookupBusyError: SQLite is busy or locked; read through the engine instead.
        """
        try:
            # fetchall: the statement runs to its end, so no read transaction stays open
            # (an open one would pin an old snapshot); a primary key matches one row at most.
            found = self._keys.connection().execute(self._sql, (key,)).fetchall()
        except sqlite3.OperationalError as error:
            raise KeyLookupBusyError(str(error)) from error
        if not found:
            return None
        values = list(found[0])
        for index, processor in self._processors:
            values[index] = processor(values[index])
        return self._row(*values)


async def read_by_key(
    lookup: KeyLookup | None,
    key: object,
    convert: Callable[[Any], T],
    fallback: Callable[[], Awaitable[T | None]],
) -> T | None:
    """*key*'s row through *lookup*, converted, when there is a lookup and SQLite is not
    busy; else ``await fallback()`` (the read through the engine)."""
    if lookup is not None:
        try:
            row = lookup.get(key)
        except KeyLookupBusyError:
            pass
        else:
            return None if row is None else convert(row)
    return await fallback()
