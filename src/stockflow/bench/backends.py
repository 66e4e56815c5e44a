"""Where ``stockflow bench events`` and ``bench orders`` run: fresh stores and buses, their
audit, and the bench's own SQL on the inventory's store.

* **embedded**: a temporary directory with ``inventory.sqlite3`` and ``bus.sqlite3`` (and
  ``orders.sqlite3`` after :meth:`BenchBackend.add_orders_database`);
* **distributed**: a fresh PostgreSQL database (created, then dropped; the orders get one of
  their own) and JetStream streams under a unique prefix (deleted afterwards).

The store is read with plain SQL on the inventory's published storage layout (tables
``events``, ``processed`` and ``checkpoints``); no inventory code is imported, and the audit
is ``stockflow audit`` in a process of its own (the bench and the auditor never import each
other).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "BenchBackend",
    "Preloaded",
    "delete_streams",
    "distributed_backend",
    "embedded_backend",
]


@dataclass(frozen=True)
class Preloaded:
    """The history written before a run (``--preload``): the run's rows come after it."""

    events: int = 0
    processed: int = 0
    last_position: int = 0
    """The log's last position once preloaded: the run's events are after it."""
    processed_at: float = 0.0
    """When the preloaded ids were processed (Unix seconds): the run's ids are later."""
    seconds: float = 0.0

    @property
    def cut(self) -> float:
        """A moment between the preloaded ids and the run's (a second after the former, so
        no rounding of the stored times puts a preloaded id on the run's side)."""
        return self.processed_at + 1.0


@dataclass
class BenchBackend:
    """URLs the worker and the bench share, and how to read and clean them up."""

    name: str
    event_store_url: str
    bus_url: str
    workdir: Path
    admin_url: str = ""
    database: str = ""
    nats_prefix: str = ""
    extra_databases: list[str] = field(default_factory=list)
    orders_url: str = ""
    """The orders database, once :meth:`add_orders_database` made one ("": none)."""
    preloaded: Preloaded = field(default_factory=Preloaded)
    """The history written before the run, which the counts and times below leave out."""

    async def counts(self) -> tuple[int, int]:
        """``(processed messages, committed events)`` of the run (the preload left out)."""
        import asyncpg

        base = self.preloaded
        if self.name == "embedded":
            with contextlib.closing(_sqlite(self.event_store_url)) as conn:
                if not _has_tables(conn):
                    return 0, 0
                processed = conn.execute(
                    "SELECT count(*) FROM processed WHERE processed_at > ?",
                    (int(base.cut * 1e6) if base.processed else -1,),
                ).fetchone()[0]
                events = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
                return int(processed), int(events[0]) - base.last_position
        pg = await _pg(self.event_store_url)
        try:
            row = await pg.fetchrow(
                "SELECT (SELECT count(*) FROM inventory.processed"
                " WHERE $1 = 0 OR processed_at > to_timestamp($2)),"
                " (SELECT count(*) FROM inventory.events WHERE position > $3)",
                base.processed,
                base.cut,
                base.last_position,
            )
        except asyncpg.UndefinedTableError:  # the worker has not created its schema yet
            return 0, 0
        finally:
            await pg.close()
        assert row is not None
        return int(row[0]), int(row[1])

    async def relay_progress(self) -> tuple[int, int]:
        """``(position the relay has published up to, newest event position)`` right now."""
        if self.name == "embedded":
            with contextlib.closing(_sqlite(self.event_store_url)) as conn:
                row = conn.execute(
                    "SELECT coalesce((SELECT position FROM checkpoints WHERE name = 'published'),"
                    " 0), (SELECT coalesce(max(position), 0) FROM events)"
                ).fetchone()
            return int(row[0]), int(row[1])
        pg = await _pg(self.event_store_url)
        try:
            record = await pg.fetchrow(
                "SELECT coalesce((SELECT position FROM inventory.checkpoints"
                " WHERE name = 'published'), 0), (SELECT coalesce(max(position), 0)"
                " FROM inventory.events)"
            )
        finally:
            await pg.close()
        assert record is not None
        return int(record[0]), int(record[1])

    async def event_times(self) -> list[tuple[float, str | None]]:
        """``(occurred_at as Unix seconds, causation_id)`` of every event of the run (after
        the preload), in log order."""
        after = self.preloaded.last_position
        if self.name == "embedded":
            with contextlib.closing(_sqlite(self.event_store_url)) as conn:
                rows = conn.execute(
                    "SELECT occurred_at, causation_id FROM events WHERE position > ?"
                    " ORDER BY position",
                    (after,),
                ).fetchall()
            return [(micros / 1e6, cause) for micros, cause in rows]
        pg = await _pg(self.event_store_url)
        try:
            records = await pg.fetch(
                "SELECT occurred_at, causation_id FROM inventory.events WHERE position > $1"
                " ORDER BY position",
                after,
            )
        finally:
            await pg.close()
        return [(_seconds(r[0]), r[1]) for r in records]

    async def new_database(self, prefix: str) -> str:
        """A fresh database next to the store's (dropped at cleanup); returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        await _admin(self.admin_url, f'CREATE DATABASE "{name}"')
        self.extra_databases.append(name)
        return name

    async def reservation_outcomes(self) -> list[tuple[float, str | None, str]]:
        """``(occurred_at as Unix seconds, causation_id, type)`` of every ``StockReserved``
        and ``ReservationRejected`` event, in log order."""
        sql = (
            "SELECT occurred_at, causation_id, type FROM {}events"
            " WHERE type IN ('StockReserved', 'ReservationRejected') ORDER BY position"
        )
        if self.name == "embedded":
            with contextlib.closing(_sqlite(self.event_store_url)) as conn:
                if not _has_tables(conn):
                    return []
                rows = conn.execute(sql.format("")).fetchall()
            return [(micros / 1e6, cause, kind) for micros, cause, kind in rows]
        import asyncpg

        pg = await _pg(self.event_store_url)
        try:
            records = await pg.fetch(sql.format("inventory."))
        except asyncpg.UndefinedTableError:  # the worker has not created its schema yet
            return []
        finally:
            await pg.close()
        return [(_seconds(r[0]), r[1], r[2]) for r in records]

    async def add_orders_database(self) -> str:
        """Give the orders service a fresh database (removed at cleanup); its URL."""
        if self.name == "embedded":
            self.orders_url = f"sqlite:///{self.workdir / 'orders.sqlite3'}"
        else:
            name = await self.new_database("stockflow_bench_orders")
            self.orders_url = urlsplit(self.admin_url)._replace(path=f"/{name}").geturl()
        return self.orders_url

    def audit_args(self) -> list[str]:
        """``stockflow audit`` arguments for this backend's stores (the orders' too, if any)."""
        args = ["--event-store-url", self.event_store_url]
        return args + (["--orders-url", self.orders_url] if self.orders_url else [])

    async def audit(self, say: Callable[[str], None]) -> bool:
        """``stockflow audit`` on the stores, as its own process; ``True`` when it passed."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from stockflow.runtime.cli import main; main()",
            "audit",
            *self.audit_args(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        say(output.decode(errors="replace").rstrip())
        return process.returncode == 0

    async def cleanup(self) -> None:
        if self.name == "embedded":
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        for name in [self.database, *self.extra_databases]:
            await _admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await delete_streams(self.bus_url.split("?", 1)[0], self.nats_prefix)
        shutil.rmtree(self.workdir, ignore_errors=True)


def embedded_backend(prefix: str = "stockflow-bench-events-") -> BenchBackend:
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    return BenchBackend(
        name="embedded",
        event_store_url=f"sqlite:///{workdir / 'inventory.sqlite3'}",
        bus_url=f"sqlite:///{workdir / 'bus.sqlite3'}",
        workdir=workdir,
    )


async def distributed_backend(
    admin_url: str, nats_url: str, prefix: str = "stockflow-bench-events-"
) -> BenchBackend:
    token = uuid.uuid4().hex[:10]
    database = f"stockflow_bench_{token}"
    await _admin(admin_url, f'CREATE DATABASE "{database}"')
    prefix = f"bench{token}"
    return BenchBackend(
        name="distributed",
        event_store_url=urlsplit(admin_url)._replace(path=f"/{database}").geturl(),
        bus_url=f"{nats_url}?prefix={prefix}",
        workdir=Path(tempfile.mkdtemp(prefix=prefix)),
        admin_url=admin_url,
        database=database,
        nats_prefix=prefix,
    )


def _sqlite(url: str) -> sqlite3.Connection:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
    conn.execute("PRAGMA query_only = ON")
    return conn


def _has_tables(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name IN ('events', 'processed')"
    ).fetchone()[0]
    return bool(found == 2)


async def _pg(url: str) -> asyncpg.Connection:
    import asyncpg

    return await asyncpg.connect(url)


async def _admin(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


async def delete_streams(nats_url: str, prefix: str) -> list[str]:
    """Delete the JetStream streams of a bus URL's ``prefix`` (``<prefix>_*``); return them.

    An empty *prefix* deletes nothing: unprefixed streams belong to someone else.
    """
    import nats

    if not prefix:
        return []

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deleted = []
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith(f"{prefix}_"):
                await js.delete_stream(info.config.name)
                deleted.append(info.config.name)
        return deleted
    finally:
        await nc.close()
