"""The Idempotency-Key store contract, run against the SQLite store on a temporary file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockflow_kit.http import IdempotencyRecord, IdempotencyStore, SqliteIdempotencyStore
from stockflow_kit.http.testing import IdempotencyStoreContract


class TestSqliteIdempotencyStore(IdempotencyStoreContract):
    durable = True
    atomic = True

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SqliteIdempotencyStore]:
        store = SqliteIdempotencyStore(str(tmp_path / "state.sqlite3"), table="idem")
        await store.start()
        yield store
        await store.close()

    @contextlib.asynccontextmanager
    async def reopened(self, store: IdempotencyStore) -> AsyncIterator[IdempotencyStore]:
        assert isinstance(store, SqliteIdempotencyStore)
        await store.close()
        again = SqliteIdempotencyStore(store.path, table=store.table)
        await again.start()
        try:
            yield again
        finally:
            await again.close()

    async def add_in_transaction(
        self, store: IdempotencyStore, record: IdempotencyRecord, *, commit: bool
    ) -> bool:
        assert isinstance(store, SqliteIdempotencyStore)
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            added = store.add(conn, record)
            conn.execute("COMMIT" if commit else "ROLLBACK")
            return added
        finally:
            conn.close()
