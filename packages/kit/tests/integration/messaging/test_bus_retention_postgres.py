"""Retention of a PostgreSQL inbox on a real server, with the time injected."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import PostgresInbox
from stockflow_kit.messaging.retention import DAY, Retention, postgres_inbox_purge
from stockflow_kit.messaging.testing import make_envelopes
from stockflow_kit.resilience.testing import ManualClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def inbox(pool: asyncpg.Pool[asyncpg.Record]) -> AsyncIterator[PostgresInbox]:
    inbox = PostgresInbox(table=f"inbox_{uuid.uuid4().hex[:10]}", registry=CollectorRegistry())
    async with pool.acquire() as conn:
        await inbox.create_schema(conn)
    yield inbox
    await pool.execute(f"DROP TABLE IF EXISTS {inbox.table}")


async def test_processed_ids_are_purged_once_older_than_their_window(
    pool: asyncpg.Pool[asyncpg.Record], inbox: PostgresInbox
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await inbox.filter_new(conn, make_envelopes(3))
    clock = ManualClock(start=time.time())
    job = postgres_inbox_purge(inbox, pool, window=7 * DAY)
    retention = Retention([job], clock=clock, registry=CollectorRegistry())

    clock.advance(7 * DAY - 3600)
    assert await retention.run_once() == {job.name: 0}
    clock.advance(7200)
    assert await retention.run_once() == {job.name: 3}
    assert await pool.fetchval(f"SELECT count(*) FROM {inbox.table}") == 0
