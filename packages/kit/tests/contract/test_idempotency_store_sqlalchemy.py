"""The Idempotency-Key store contract, run against the SQLAlchemy store on SQLite and PostgreSQL.

PostgreSQL runs are marked ``integration`` (the ``sqlalchemy_url`` fixture's parameter).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from stockflow_kit.http import IdempotencyRecord, IdempotencyStore
from stockflow_kit.http.sqlalchemy import SqlAlchemyIdempotencyStore, idempotency_table
from stockflow_kit.http.testing import IdempotencyStoreContract, make_record


@pytest.fixture
async def sqlalchemy_store(
    sqlalchemy_engine: AsyncEngine,
) -> AsyncIterator[SqlAlchemyIdempotencyStore]:
    """A started store on a table of its own, dropped afterwards."""
    metadata = MetaData()
    table = idempotency_table(metadata, f"idem_{uuid.uuid4().hex[:12]}")
    store = SqlAlchemyIdempotencyStore(sqlalchemy_engine, table)
    await store.start()
    yield store
    await store.close()
    async with sqlalchemy_engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


class TestSqlAlchemyIdempotencyStore(IdempotencyStoreContract):
    durable = True
    atomic = True

    @pytest.fixture
    def store(self, sqlalchemy_store: SqlAlchemyIdempotencyStore) -> SqlAlchemyIdempotencyStore:
        return sqlalchemy_store

    @pytest.fixture(autouse=True)
    def _engines(self, open_sqlalchemy_engine: Callable[[str], AsyncEngine]) -> None:
        self.open_engine = open_sqlalchemy_engine  # pytest binds class fixtures to the instance

    @contextlib.asynccontextmanager
    async def reopened(self, store: IdempotencyStore) -> AsyncIterator[IdempotencyStore]:
        assert isinstance(store, SqlAlchemyIdempotencyStore)
        await store.close()
        # A new engine, so nothing is shared with the first store but the database.
        again = SqlAlchemyIdempotencyStore(
            self.open_engine(store.engine.url.render_as_string(hide_password=False)), store.table
        )
        await again.start()
        try:
            yield again
        finally:
            await again.close()

    async def add_in_transaction(
        self, store: IdempotencyStore, record: IdempotencyRecord, *, commit: bool
    ) -> bool:
        assert isinstance(store, SqlAlchemyIdempotencyStore)
        async with store.engine.connect() as conn:
            transaction = await conn.begin()
            added = await store.add(conn, record)
            await (transaction.commit() if commit else transaction.rollback())
            return added


async def test_a_session_adds_a_record_in_its_transaction(
    sqlalchemy_store: SqlAlchemyIdempotencyStore,
) -> None:
    store = sqlalchemy_store
    first, taken = make_record("key-1"), make_record("key-1", request_hash="other")
    async with AsyncSession(store.engine) as session:
        async with session.begin():
            assert await store.add(session, first) is True
            assert await store.add(session, taken) is False
        transaction = await session.begin()
        assert await store.add(session, make_record("key-2")) is True
        await transaction.rollback()

    assert await store.get(first.scope, "key-1") == first
    assert await store.get(first.scope, "key-2") is None


async def test_a_concurrent_add_of_the_same_key_waits_for_the_first_and_loses(
    sqlalchemy_store: SqlAlchemyIdempotencyStore,
) -> None:
    store, first = sqlalchemy_store, make_record(request_hash="first")

    async def second_request() -> bool:
        async with store.engine.begin() as conn:
            return await store.add(conn, make_record(request_hash="second"))

    async with store.engine.connect() as conn:
        transaction = await conn.begin()
        assert await store.add(conn, first) is True
        racing = asyncio.create_task(second_request())
        await asyncio.sleep(0.2)
        assert not racing.done()  # blocked on the first transaction (its row, or SQLite's lock)
        await transaction.commit()
        assert await racing is False
    assert await store.get(first.scope, first.key) == first


async def test_add_many_writes_the_new_keys_in_one_statement_and_reports_each(
    sqlalchemy_store: SqlAlchemyIdempotencyStore,
) -> None:
    store = sqlalchemy_store
    async with store.engine.begin() as conn:
        assert await store.add(conn, make_record("taken")) is True
    batch = [
        make_record("new-1"),
        make_record("taken", request_hash="other"),
        make_record("new-2"),
        make_record("new-1", request_hash="repeat"),
    ]
    async with store.engine.begin() as conn:
        assert await store.add_many(conn, batch) == [True, False, True, False]
        assert await store.add_many(conn, []) == []
    stored = await store.get(batch[0].scope, "new-1")
    assert stored is not None
    assert stored.request_hash == batch[0].request_hash
