"""The in-run ceiling of ``stockflow bench events --ceiling``: the bare stack doing the same
work with no stockflow code.

After the worker's run, in the same run: the same envelopes are published to a topic of their
own on the same bus (not timed), and a loop with nothing but the bus client and the database
driver consumes them: ``fetch(batch_size)``, skip the ids it has seen (an in-memory set),
insert the very event rows the worker committed for those commands (read back from the store,
grouped by ``causation_id``) and the processed ids, in one transaction per batch (SQLite:
``executemany``; PostgreSQL: binary ``COPY``), then ack the batch. The next fetch overlaps the
commit (a two-stage pipeline, as the worker's). No decision, no projection, no snapshot, no
metrics: what stockflow adds on top of that is what its fraction of the ceiling prices.

The event rows are every column of the store's ``events`` but ``position`` (read from the
table itself, so a column the store gains is copied too). The target tables are copies of
the store's own ``events`` and ``processed`` (SQLite: their
DDL from ``sqlite_master``, in a file of their own with the store's pragmas; PostgreSQL:
``CREATE TABLE … (LIKE inventory.… INCLUDING ALL)`` in a schema ``ceiling`` of the run's
database) holding the same preloaded history, so both sides write into a log of one size.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from stockflow.bench.backends import BenchBackend
from stockflow_kit.messaging import ConsumerConfig, Delivery, make_bus

__all__ = ["CEILING_TIME_CAP", "measure_ceiling"]

CEILING_TIME_CAP: Final = 60.0
"""Seconds the bare loop may run (the rate covers what was done by then)."""
_SQLITE_PRAGMAS: Final = (  # the store's own (SqliteEventStore._open)
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA cache_size = -65536",
    "PRAGMA wal_autocheckpoint = 10000",
)

Row = tuple[Any, ...]


async def measure_ceiling(
    backend: BenchBackend,
    envelopes: Sequence[Any],
    *,
    batch_size: int,
    say: Callable[[str], None],
    time_cap: float = CEILING_TIME_CAP,
) -> dict[str, Any]:
    """Run the bare loop on *envelopes* (the run's own); its figures as a JSON-ready dict."""
    writer = await (
        _SqliteWriter.open(backend) if backend.name == "embedded" else _PgWriter.open(backend)
    )
    try:
        rows = await writer.run_rows()
        by_command: dict[str, list[Row]] = {}
        cause = writer.column_names.index("causation_id")
        for row in rows:
            by_command.setdefault(row[cause], []).append(row)
        topic = f"ceiling{uuid.uuid4().hex[:8]}.commands"
        bus = make_bus(backend.bus_url, name="bench-ceiling")
        await bus.start()
        try:
            for start in range(0, len(envelopes), 1000):
                await bus.publish(topic, list(envelopes[start : start + 1000]))
            say(f"ceiling: {len(envelopes)} envelopes on {topic}; bare fetch + insert + ack ...")
            sub = await bus.subscribe(topic, "ceiling", ConsumerConfig(ack_wait=120.0))
            try:
                unique = len({envelope.id for envelope in envelopes})
                result = await _loop(sub, writer, by_command, unique, batch_size, time_cap)
            finally:
                await sub.close()
        finally:
            await bus.close()
    finally:
        await writer.close()
    say(f"ceiling: {result['events']} events in {result['seconds']} s")
    return result


async def _loop(
    sub: Any,
    writer: _SqliteWriter | _PgWriter,
    by_command: dict[str, list[Row]],
    unique: int,
    batch_size: int,
    time_cap: float,
) -> dict[str, Any]:
    """Until every unique command was seen (a bus may drop a duplicate at publish already)."""
    seen: set[str] = set()
    deliveries = events = batches = 0
    pending: asyncio.Task[None] | None = None
    pending_batch: Sequence[Delivery] = ()
    started = time.perf_counter()
    capped = False
    while len(seen) < unique:
        if time.perf_counter() - started > time_cap:
            capped = True
            break
        batch = await sub.fetch(batch_size, max_wait=1.0)
        if not batch:
            continue
        deliveries += len(batch)
        ids = []
        for delivery in batch:
            message_id = delivery.envelope.id
            if message_id not in seen:
                seen.add(message_id)
                ids.append(message_id)
        event_rows = [row for message_id in ids for row in by_command.get(message_id, ())]
        if pending is not None:
            await pending
            await sub.ack(pending_batch)
        pending = asyncio.create_task(writer.insert(event_rows, ids))
        pending_batch = batch
        events += len(event_rows)
        batches += 1
    if pending is not None:
        await pending
        await sub.ack(pending_batch)
    seconds = time.perf_counter() - started
    return {
        "events": events,
        "commands": len(seen),
        "deliveries": deliveries,
        "batches": batches,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds > 0 else 0.0,
        "capped_at_seconds": time_cap if capped else None,
    }


class _SqliteWriter:
    def __init__(
        self, store: str, target: sqlite3.Connection, after: int, columns: list[str]
    ) -> None:
        self.store, self.db, self.after, self.column_names = store, target, after, columns
        self.columns = ", ".join(columns)
        self.insert_events = (
            f"INSERT INTO events ({self.columns}) VALUES ({', '.join('?' * len(columns))})"
        )

    @classmethod
    async def open(cls, backend: BenchBackend) -> _SqliteWriter:
        store = backend.event_store_url.removeprefix("sqlite:///")
        target = sqlite3.connect(
            backend.workdir / "ceiling.sqlite3", isolation_level=None, check_same_thread=False
        )
        for pragma in _SQLITE_PRAGMAS:
            target.execute(pragma)
        with contextlib.closing(sqlite3.connect(store)) as source:
            ddl = [
                sql
                for (sql,) in source.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name IN ('events', 'processed')"
                    " AND sql IS NOT NULL ORDER BY type DESC"  # tables before their indexes
                )
            ]
            columns = [
                name
                for (name,) in source.execute("SELECT name FROM pragma_table_info('events')")
                if name != "position"
            ]
        for statement in ddl:
            target.execute(statement)
        after = backend.preloaded.last_position
        if after:  # the same history in the ceiling's log
            target.execute("ATTACH DATABASE ? AS store", (store,))
            target.execute("BEGIN")
            target.execute(
                "INSERT INTO events SELECT * FROM store.events WHERE position <= ?", (after,)
            )
            target.execute(
                "INSERT INTO processed SELECT * FROM store.processed WHERE processed_at <= ?",
                (int(backend.preloaded.cut * 1e6),),
            )
            target.execute("COMMIT")
            target.execute("DETACH DATABASE store")
        return cls(store, target, after, columns)

    async def run_rows(self) -> list[Row]:
        with contextlib.closing(sqlite3.connect(self.store)) as source:
            return source.execute(
                f"SELECT {self.columns} FROM events WHERE position > ? ORDER BY position",
                (self.after,),
            ).fetchall()

    async def insert(self, rows: list[Row], ids: list[str]) -> None:
        await asyncio.to_thread(self._insert, rows, ids)

    def _insert(self, rows: list[Row], ids: list[str]) -> None:
        at = int(time.time() * 1e6)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(self.insert_events, rows)
        self.db.executemany(
            "INSERT INTO processed (message_id, processed_at) VALUES (?, ?)", [(i, at) for i in ids]
        )
        self.db.execute("COMMIT")

    async def close(self) -> None:
        self.db.close()


class _PgWriter:
    def __init__(self, conn: Any, after: int, columns: list[str]) -> None:
        self.conn, self.after, self.columns = conn, after, columns
        self.column_names = columns

    @classmethod
    async def open(cls, backend: BenchBackend) -> _PgWriter:
        import asyncpg

        conn = await asyncpg.connect(backend.event_store_url)
        after = backend.preloaded.last_position
        await conn.execute(
            "CREATE SCHEMA ceiling;"
            " CREATE TABLE ceiling.events (LIKE inventory.events INCLUDING ALL);"
            " CREATE TABLE ceiling.processed (LIKE inventory.processed INCLUDING ALL)"
        )
        if after:
            await conn.execute(
                "INSERT INTO ceiling.events OVERRIDING SYSTEM VALUE"
                " SELECT * FROM inventory.events WHERE position <= $1",
                after,
            )
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('ceiling.events', 'position'), $1)", after
            )
            await conn.execute(
                "INSERT INTO ceiling.processed SELECT * FROM inventory.processed"
                " WHERE processed_at <= to_timestamp($1)",
                backend.preloaded.cut,
            )
        columns = [
            record[0]
            for record in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " 'inventory' AND table_name = 'events' AND column_name <> 'position'"
                " ORDER BY ordinal_position"
            )
        ]
        return cls(conn, after, columns)

    async def run_rows(self) -> list[Row]:
        records = await self.conn.fetch(
            f"SELECT {', '.join(self.columns)} FROM inventory.events WHERE position > $1"
            " ORDER BY position",
            self.after,
        )
        return [tuple(record) for record in records]

    async def insert(self, rows: list[Row], ids: list[str]) -> None:
        at = datetime.now(UTC)
        async with self.conn.transaction():
            await self.conn.copy_records_to_table(
                "events", schema_name="ceiling", columns=self.columns, records=rows
            )
            await self.conn.copy_records_to_table(
                "processed",
                schema_name="ceiling",
                columns=("message_id", "processed_at"),
                records=[(i, at) for i in ids],
            )

    async def close(self) -> None:
        await self.conn.close()
