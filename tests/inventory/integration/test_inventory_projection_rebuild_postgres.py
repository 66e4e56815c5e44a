"""``stockflow inventory rebuild-projection`` against PostgreSQL: a corrupted projection is
found, replaced with its checkpoint, and found clean afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from tests.inventory.projection_history import (
    HISTORY,
    TRUE_A,
    TRUE_B,
    commit_folded,
)

from stockflow.inventory.adapters.event_store.postgres import PostgresEventStore
from stockflow.runtime.maintenance import rebuild_projection

pytestmark = pytest.mark.integration


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own: the command uses the default schema ``inventory``, which other
    tests of the session may use in the session's database."""
    name = f"stockflow_rebuild_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlsplit(postgres_url)._replace(path=f"/{name}").geturl()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_command_rewrites_a_corrupted_projection_in_postgres(database_url: str) -> None:
    store = PostgresEventStore(database_url)
    await store.start()
    try:
        last = await commit_folded(store, HISTORY)
    finally:
        await store.close()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE inventory.stock SET on_hand = 40 WHERE sku = 'A';"
            " DELETE FROM inventory.stock WHERE sku = 'B';"
            " INSERT INTO inventory.stock VALUES ('Z', 1, 0, 1);"
            " UPDATE inventory.checkpoints SET position = 0 WHERE name = 'projection'"
        )
    finally:
        await conn.close()
    lines: list[str] = []

    assert await rebuild_projection(database_url, check=True, echo=lines.append) == 3
    assert await rebuild_projection(database_url, check=False, echo=lines.append) == 0
    assert lines[-1] == f"rebuilt 2 SKUs from the event log up to {last}"
    assert await rebuild_projection(database_url, check=True, echo=lines.append) == 0

    store = PostgresEventStore(database_url)
    await store.start()
    try:
        assert await store.all_stock() == [TRUE_A, TRUE_B]
        assert await store.projection_checkpoint() == last
    finally:
        await store.close()
