"""Every role suite of the event store, run against ``PostgresEventStore`` (one fresh schema
per test); plus the migration of a schema of the previous release."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from tests.inventory.contract.checkpoints_contract import CheckpointsContract
from tests.inventory.contract.event_log_contract import EventLogContract
from tests.inventory.contract.event_store_contract import (
    batch,
    check_trace_context_added,
    new_event,
)
from tests.inventory.contract.idempotency_contract import IdempotencyRecordsContract, record
from tests.inventory.contract.lease_store_contract import LeaseStoreContract, claimed
from tests.inventory.contract.processed_ids_contract import ProcessedIdsContract
from tests.inventory.contract.snapshots_contract import SnapshotsContract
from tests.inventory.contract.stock_projection_contract import StockProjectionContract

from stockflow.inventory.adapters.event_store.postgres import PostgresEventStore
from stockflow.inventory.service_layer.ports import EventStore, LeaseLostError


class OnPostgres:
    @pytest.fixture
    def open_store(self, postgres_url: str) -> Callable[[], EventStore]:
        schema = f"inventory_{uuid.uuid4().hex[:12]}"
        return lambda: PostgresEventStore(postgres_url, schema=schema)


@pytest.mark.integration
class TestPostgresEventLog(OnPostgres, EventLogContract):
    pass


@pytest.mark.integration
class TestPostgresProcessedIds(OnPostgres, ProcessedIdsContract):
    pass


@pytest.mark.integration
class TestPostgresSnapshots(OnPostgres, SnapshotsContract):
    pass


@pytest.mark.integration
class TestPostgresCheckpoints(OnPostgres, CheckpointsContract):
    pass


@pytest.mark.integration
class TestPostgresStockProjection(OnPostgres, StockProjectionContract):
    pass


@pytest.mark.integration
class TestPostgresIdempotencyRecords(OnPostgres, IdempotencyRecordsContract):
    pass


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        PostgresEventStore("postgresql://unused", schema='x"; DROP TABLE events; --')


@pytest.mark.integration
async def test_a_schema_of_the_unscoped_release_is_migrated_and_keeps_its_responses(
    postgres_url: str,
) -> None:
    schema = f"inventory_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(postgres_url, schema=schema)
    await store.start()
    await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:  # back to the idempotency table of the release before scopes
        await conn.execute(
            f"DROP INDEX {schema}.idempotency_by_time; DROP TABLE {schema}.idempotency;"
            f" CREATE TABLE {schema}.idempotency (key text PRIMARY KEY,"
            " request_hash text NOT NULL, status integer NOT NULL, body bytea NOT NULL);"
            f" INSERT INTO {schema}.idempotency VALUES ('k-ok', 'h1', 201, '{{}}'),"
            " ('k-bad', 'h2', 409, '{}')"
        )
    finally:
        await conn.close()
    before = time.time()
    store = PostgresEventStore(postgres_url, schema=schema)
    await store.start()
    try:
        ok, bad = await store.get("", "k-ok"), await store.get("", "k-bad")
        assert ok is not None
        assert bad is not None
        assert (ok.request_hash, ok.status, ok.body, ok.media_type) == (
            "h1",
            201,
            b"{}",
            "application/json",
        )
        assert bad.media_type == "application/problem+json"
        assert before - 1 <= ok.created_at <= time.time() + 1
        scoped = record("k-ok", created_at=before)
        assert await store.put(scoped) == scoped
        assert await store.prune(time.time() + 2) == 3
    finally:
        await store.close()
    # Started again on the migrated schema: nothing left to create or migrate.
    store = PostgresEventStore(postgres_url, schema=schema)
    await store.start()
    await store.close()


@pytest.mark.integration
async def test_an_events_table_without_trace_context_gains_it_and_keeps_its_events(
    postgres_url: str,
) -> None:
    schema = f"inventory_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(postgres_url, schema=schema)
    await store.start()
    await store.commit(batch([new_event("A", 1)]))
    await store.close()
    conn = await asyncpg.connect(postgres_url)
    try:  # back to the events table of the release before traceparent
        await conn.execute(f"ALTER TABLE {schema}.events DROP COLUMN traceparent")
        await check_trace_context_added(lambda: PostgresEventStore(postgres_url, schema=schema))
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


@pytest.mark.integration
class TestPostgresLeases(OnPostgres, LeaseStoreContract):
    pass


@pytest.mark.integration
async def test_a_takeover_waits_for_the_old_owners_commit_in_flight(postgres_url: str) -> None:
    """The claim's FOR SHARE lock is held to the end of the commit's transaction: a takeover
    of the (expired) lease waits for it, and the old owner's next commit fails."""
    schema = f"inventory_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(postgres_url, schema=schema)
    await store.start()
    conn = await asyncpg.connect(postgres_url)
    try:
        await store.ensure_partitions([0])
        assert await store.acquire(0, "a", 0.3) == 1
        in_flight = conn.transaction()
        await in_flight.start()  # a's commit, between its claim check and its COMMIT
        rows = await conn.fetch(store._sql.check_leases, [0], [1], "a")
        assert len(rows) == 1
        await asyncio.sleep(0.5)  # a's lease expires while its commit is in flight
        takeover = asyncio.create_task(store.acquire(0, "b", 30.0))
        await asyncio.sleep(0.5)
        assert not takeover.done(), "the takeover did not wait for the commit in flight"
        await in_flight.commit()
        assert await asyncio.wait_for(takeover, 10) == 2
        with pytest.raises(LeaseLostError):
            await store.commit(claimed([new_event("X", 1)], "a", (0, 1)))
    finally:
        await conn.close()
        await store.close()
