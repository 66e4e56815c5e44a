"""The PostgreSQL outbox and inbox on a real server: atomic with the state change, crash-safe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TYPE_CHECKING

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import (
    ConsumerConfig,
    Delivery,
    InMemoryBus,
    OutboxRelay,
    PostgresInbox,
    PostgresOutbox,
)
from stockflow_kit.messaging.testing import (
    CrashAfterPublishBus,
    SimulatedCrashError,
    make_envelopes,
)

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    PgConnection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

TOPIC = "orders.events"


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def tables(pool: asyncpg.Pool[asyncpg.Record], suffix: str) -> AsyncIterator[str]:
    """A state table ``orders_<suffix>`` with one counter row; dropped afterwards."""
    name = f"orders_{suffix}"
    await pool.execute(f"CREATE TABLE {name} (id TEXT PRIMARY KEY, applied INT NOT NULL)")
    await pool.execute(f"INSERT INTO {name} VALUES ('total', 0)")
    yield name
    for table in (name, f"outbox_{suffix}", f"inbox_{suffix}"):
        await pool.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
async def outbox(pool: asyncpg.Pool[asyncpg.Record], suffix: str, tables: str) -> PostgresOutbox:
    outbox = PostgresOutbox(pool, table=f"outbox_{suffix}", name="orders")
    async with pool.acquire() as conn:
        await outbox.create_schema(conn)
    return outbox


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def inbox(
    pool: asyncpg.Pool[asyncpg.Record], suffix: str, tables: str, registry: CollectorRegistry
) -> PostgresInbox:
    inbox = PostgresInbox(table=f"inbox_{suffix}", name="inventory", registry=registry)
    async with pool.acquire() as conn:
        await inbox.create_schema(conn)
    return inbox


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()


async def apply(
    pool: asyncpg.Pool[asyncpg.Record], table: str, inbox: PostgresInbox, batch: Sequence[Delivery]
) -> None:
    """The idempotent effect: count each message once, in the inbox's transaction."""
    async with pool.acquire() as conn, conn.transaction():
        fresh = await inbox.filter_new(conn, batch)
        await conn.execute(f"UPDATE {table} SET applied = applied + $1", len(fresh))


async def applied(pool: asyncpg.Pool[asyncpg.Record], table: str) -> int:
    return int(await pool.fetchval(f"SELECT applied FROM {table}"))


async def add_then_fail(conn: PgConnection, table: str, add: Awaitable[object]) -> None:
    """Await *add* in a transaction whose state change then violates a constraint."""
    async with conn.transaction():
        await add
        await conn.execute(f"INSERT INTO {table} VALUES ('o-1', 0), ('o-1', 0)")


async def test_outbox_rows_commit_and_roll_back_with_the_state_change(
    pool: asyncpg.Pool[asyncpg.Record], tables: str, outbox: PostgresOutbox
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {tables} VALUES ('o-1', 0)")
            await outbox.add(conn, TOPIC, make_envelopes(2))
        with pytest.raises(asyncpg.UniqueViolationError):
            await add_then_fail(conn, tables, outbox.add(conn, TOPIC, make_envelopes(1, start=3)))
    assert [r.envelope.sequence for r in await outbox.claim(10)] == [1, 2]


async def test_the_relay_publishes_in_order_and_reports_its_backlog(
    pool: asyncpg.Pool[asyncpg.Record], outbox: PostgresOutbox, bus: InMemoryBus
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, TOPIC, make_envelopes(5))
    registry = CollectorRegistry()
    relay = OutboxRelay(outbox, bus, batch_size=3, registry=registry)
    await relay.record_backlog()
    assert registry.get_sample_value("outbox_backlog", {"outbox": "orders"}) == 5
    assert (registry.get_sample_value("outbox_oldest_age_seconds", {"outbox": "orders"}) or 0) >= 0

    assert [await relay.relay_once() for _ in range(3)] == [3, 2, 0]
    await relay.record_backlog()
    assert registry.get_sample_value("outbox_backlog", {"outbox": "orders"}) == 0
    sub = await bus.subscribe(TOPIC, "reader")
    assert [d.envelope.sequence for d in await sub.fetch(10, 0.1)] == [1, 2, 3, 4, 5]


async def test_a_relay_failing_after_publish_republishes_and_nothing_is_doubled(
    pool: asyncpg.Pool[asyncpg.Record],
    tables: str,
    outbox: PostgresOutbox,
    inbox: PostgresInbox,
    bus: InMemoryBus,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, TOPIC, make_envelopes(10))
    with pytest.raises(SimulatedCrashError):
        await OutboxRelay(outbox, CrashAfterPublishBus(bus)).relay_once()
    assert await OutboxRelay(outbox, bus).relay_once() == 10

    sub = await bus.subscribe(TOPIC, "inventory")
    batch = await sub.fetch(100, max_wait=0.5)
    await apply(pool, tables, inbox, batch)
    await sub.ack(batch)

    assert [d.envelope.sequence for d in batch] == list(range(1, 11))
    assert await applied(pool, tables) == 10
    assert list(await sub.fetch(100, max_wait=0.05)) == []


async def test_an_effect_committed_but_not_acked_is_applied_once(
    pool: asyncpg.Pool[asyncpg.Record],
    tables: str,
    inbox: PostgresInbox,
    bus: InMemoryBus,
    registry: CollectorRegistry,
) -> None:
    await bus.publish(TOPIC, make_envelopes(5))
    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=0.2))
    await apply(pool, tables, inbox, await sub.fetch(100, max_wait=0.5))  # then "crash"

    redelivered = await sub.fetch(100, max_wait=1.0)
    await apply(pool, tables, inbox, redelivered)
    await sub.ack(redelivered)

    assert {d.delivery_count for d in redelivered} == {2}
    assert await applied(pool, tables) == 5
    labels = {"topic": TOPIC, "subscription": "inventory", "outcome": "duplicate_skipped"}
    assert registry.get_sample_value("messaging_messages_total", labels) == 5


async def test_a_concurrent_consumer_of_the_same_id_waits_and_skips_it(
    pool: asyncpg.Pool[asyncpg.Record], inbox: PostgresInbox
) -> None:
    [envelope] = make_envelopes(1)
    async with pool.acquire() as first, pool.acquire() as second:
        tx = first.transaction()
        await tx.start()
        assert await inbox.filter_new(first, [envelope]) == [envelope]
        async with second.transaction():
            racing = asyncio.create_task(inbox.filter_new(second, [envelope]))
            await asyncio.sleep(0.1)
            assert not racing.done()  # blocked on the first transaction's row
            await tx.commit()
            assert await racing == []


async def test_inbox_ids_roll_back_with_the_effect_and_can_be_purged(
    pool: asyncpg.Pool[asyncpg.Record], tables: str, inbox: PostgresInbox
) -> None:
    first, second = make_envelopes(2)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await add_then_fail(conn, tables, inbox.filter_new(conn, [first]))
        async with conn.transaction():
            assert await inbox.filter_new(conn, [first, second, first]) == [first, second]
        assert await inbox.purge(conn, older_than=3600) == 0
        assert await inbox.purge(conn, older_than=-1) == 2
