"""The Idempotency-Key store contract, run against PostgreSQL (a table of its own per test)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from stockflow_kit.http import IdempotencyRecord, IdempotencyStore, PostgresIdempotencyStore
from stockflow_kit.http.testing import IdempotencyStoreContract

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


class TestPostgresIdempotencyStore(IdempotencyStoreContract):
    durable = True
    atomic = True

    @pytest.fixture
    async def store(
        self, pool: asyncpg.Pool[asyncpg.Record], postgres_url: str
    ) -> AsyncIterator[PostgresIdempotencyStore]:
        self.url = postgres_url  # pytest binds class fixtures to the test's instance
        store = PostgresIdempotencyStore(pool, table=f"idem_{uuid.uuid4().hex[:12]}")
        await store.start()
        yield store
        await store.close()
        await pool.execute(f"DROP TABLE {store.table}")

    @contextlib.asynccontextmanager
    async def reopened(self, store: IdempotencyStore) -> AsyncIterator[IdempotencyStore]:
        assert isinstance(store, PostgresIdempotencyStore)
        await store.close()
        # A new pool, so nothing is shared with the first store but the server's storage.
        pool = await asyncpg.create_pool(self.url, min_size=1, max_size=1)
        again = PostgresIdempotencyStore(pool, table=store.table)
        await again.start()
        try:
            yield again
        finally:
            await pool.close()

    async def add_in_transaction(
        self, store: IdempotencyStore, record: IdempotencyRecord, *, commit: bool
    ) -> bool:
        assert isinstance(store, PostgresIdempotencyStore)
        async with store.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            added = await store.add(conn, record)
            await (tx.commit() if commit else tx.rollback())
            return added
