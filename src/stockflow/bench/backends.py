"""Where ``stockflow bench events`` runs: fresh stores and buses, and its own SQL on the store.

* **embedded**: a temporary directory with ``inventory.sqlite3`` and ``bus.sqlite3``;
* **distributed**: a fresh PostgreSQL database (created, then dropped) and JetStream streams
  under a unique prefix (deleted afterwards).

The store is read with plain SQL on the inventory's published storage layout (tables
``events``, ``processed`` and ``checkpoints``); no inventory code is imported.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import asyncpg

__all__ = ["BenchBackend", "delete_streams", "distributed_backend", "embedded_backend"]


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

    async def counts(self) -> tuple[int, int]:
        """``(processed messages, committed events)`` right now."""
        import asyncpg

        if self.name == "embedded":
            with contextlib.closing(_sqlite(self.event_store_url)) as conn:
                if not _has_tables(conn):
                    return 0, 0
                processed = conn.execute("SELECT count(*) FROM processed").fetchone()[0]
                events = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
                return int(processed), int(events[0])
        pg = await _pg(self.event_store_url)
        try:
            row = await pg.fetchrow(
                "SELECT (SELECT count(*) FROM inventory.processed),"
                " (SELECT count(*) FROM inventory.events)"
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
        """``(occurred_at as Unix seconds, causation_id)`` of every event, in log order."""
        if self.name == "embedded":
            with contextlib.closing(_sqlite(self.event_store_url)) as conn:
                rows = conn.execute(
                    "SELECT occurred_at, causation_id FROM events ORDER BY position"
                ).fetchall()
            return [(micros / 1e6, cause) for micros, cause in rows]
        pg = await _pg(self.event_store_url)
        try:
            records = await pg.fetch(
                "SELECT occurred_at, causation_id FROM inventory.events ORDER BY position"
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

    async def cleanup(self) -> None:
        if self.name == "embedded":
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        for name in [self.database, *self.extra_databases]:
            await _admin(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await delete_streams(self.bus_url.split("?", 1)[0], self.nats_prefix)
        shutil.rmtree(self.workdir, ignore_errors=True)


def embedded_backend() -> BenchBackend:
    workdir = Path(tempfile.mkdtemp(prefix="stockflow-bench-events-"))
    return BenchBackend(
        name="embedded",
        event_store_url=f"sqlite:///{workdir / 'inventory.sqlite3'}",
        bus_url=f"sqlite:///{workdir / 'bus.sqlite3'}",
        workdir=workdir,
    )


async def distributed_backend(admin_url: str, nats_url: str) -> BenchBackend:
    token = uuid.uuid4().hex[:10]
    database = f"stockflow_bench_{token}"
    await _admin(admin_url, f'CREATE DATABASE "{database}"')
    prefix = f"bench{token}"
    return BenchBackend(
        name="distributed",
        event_store_url=urlsplit(admin_url)._replace(path=f"/{database}").geturl(),
        bus_url=f"{nats_url}?prefix={prefix}",
        workdir=Path(tempfile.mkdtemp(prefix="stockflow-bench-events-")),
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
