"""The SQLAlchemy outbox and inbox on SQLite and PostgreSQL: in the caller's transaction, ordered
relay, dedupe, purges. PostgreSQL runs are marked ``integration`` (``sqlalchemy_url``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, Table, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import registry as registry_of_mappers

from stockflow_kit.messaging import ConsumerConfig, Delivery, Envelope, InMemoryBus, OutboxRelay
from stockflow_kit.messaging.retention import Retention
from stockflow_kit.messaging.sqlalchemy import (
    SqlAlchemyInbox,
    SqlAlchemyOutbox,
    SqlConnection,
    inbox_table,
    outbox_table,
    sqlalchemy_inbox_purge,
)
from stockflow_kit.messaging.testing import (
    CrashAfterPublishBus,
    SimulatedCrashError,
    make_envelopes,
)

TOPIC = "orders.events"
Transaction: TypeAlias = contextlib.AbstractAsyncContextManager[SqlConnection]


@dataclass(frozen=True)
class Tables:
    """The test's tables, with unique names: a state table, the outbox and the inbox."""

    orders: Table
    outbox: Table
    inbox: Table


@pytest.fixture
async def tables(sqlalchemy_engine: AsyncEngine) -> AsyncIterator[Tables]:
    metadata, suffix = MetaData(), uuid.uuid4().hex[:10]
    orders = Table(
        f"orders_{suffix}",
        metadata,
        Column("id", Text, primary_key=True),
        Column("applied", Integer, nullable=False),
    )
    tables = Tables(
        orders, outbox_table(metadata, f"outbox_{suffix}"), inbox_table(metadata, f"inbox_{suffix}")
    )
    async with sqlalchemy_engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(orders.insert().values(id="total", applied=0))
    yield tables
    async with sqlalchemy_engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)


@pytest.fixture
def outbox(sqlalchemy_engine: AsyncEngine, tables: Tables) -> SqlAlchemyOutbox:
    return SqlAlchemyOutbox(sqlalchemy_engine, tables.outbox, name="orders")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def inbox(tables: Tables, registry: CollectorRegistry) -> SqlAlchemyInbox:
    return SqlAlchemyInbox(tables.inbox, name="inventory", registry=registry)


@pytest.fixture(params=["connection", "session"])
def begin(
    request: pytest.FixtureRequest, sqlalchemy_engine: AsyncEngine
) -> Callable[[], Transaction]:
    """Opens a transaction on an ``AsyncConnection`` or on an ``AsyncSession``."""

    @contextlib.asynccontextmanager
    async def on_session() -> AsyncIterator[SqlConnection]:
        async with AsyncSession(sqlalchemy_engine) as session, session.begin():
            yield session

    return on_session if request.param == "session" else sqlalchemy_engine.begin


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()


async def add_then_fail(
    tx: Transaction, orders: Table, add: Callable[[SqlConnection], Awaitable[object]]
) -> None:
    """Run *add* in a transaction whose state change then violates a constraint."""
    async with tx as conn:
        await add(conn)
        await conn.execute(orders.insert(), [{"id": "o-1", "applied": 0}] * 2)


async def apply(
    engine: AsyncEngine, tables: Tables, inbox: SqlAlchemyInbox, batch: Sequence[Delivery]
) -> None:
    """The idempotent effect: count each message once, in the inbox's transaction."""
    async with engine.begin() as conn:
        fresh = await inbox.filter_new(conn, batch)
        orders = tables.orders
        await conn.execute(orders.update().values(applied=orders.c.applied + len(fresh)))


async def applied(engine: AsyncEngine, tables: Tables) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(tables.orders.c.applied))).scalar_one())


async def inbox_ids(engine: AsyncEngine, tables: Tables) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(tables.inbox.c.msg_id))).scalars())


# ---------------------------------------------------------------- outbox


async def test_outbox_rows_commit_and_roll_back_with_the_state_change(
    begin: Callable[[], Transaction], tables: Tables, outbox: SqlAlchemyOutbox
) -> None:
    async with begin() as conn:
        await conn.execute(tables.orders.insert().values(id="o-0", applied=0))
        await outbox.add(conn, TOPIC, make_envelopes(2))
    with pytest.raises(IntegrityError):
        await add_then_fail(
            begin(), tables.orders, lambda c: outbox.add(c, TOPIC, make_envelopes(1, start=3))
        )
    assert [r.envelope.sequence for r in await outbox.claim(10)] == [1, 2]


async def test_groups_of_several_topics_and_traces_are_stored_in_order(
    begin: Callable[[], Transaction], outbox: SqlAlchemyOutbox
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with begin() as conn:
        await outbox.add_groups(
            conn,
            [
                (TOPIC, make_envelopes(2), {"traceparent": traceparent}),
                ("orders.audit", make_envelopes(1, start=3), None),
                (TOPIC, [], None),
            ],
        )
    records = await outbox.claim(10)
    assert [(r.topic, r.envelope.sequence) for r in records] == [
        (TOPIC, 1),
        (TOPIC, 2),
        ("orders.audit", 3),
    ]
    assert records[0].headers["traceparent"] == traceparent
    assert "traceparent" not in records[2].headers


async def test_the_relay_publishes_in_order_and_removes_what_the_bus_took(
    sqlalchemy_engine: AsyncEngine, outbox: SqlAlchemyOutbox, bus: InMemoryBus
) -> None:
    registry = CollectorRegistry()
    async with sqlalchemy_engine.begin() as conn:
        await outbox.add(conn, TOPIC, make_envelopes(3))
        await outbox.add(conn, "orders.audit", make_envelopes(1, start=4))
        await outbox.add(conn, TOPIC, make_envelopes(2, start=5))
        await outbox.add(conn, TOPIC, [])
    relay = OutboxRelay(outbox, bus, batch_size=4, registry=registry)
    await relay.record_backlog()
    assert registry.get_sample_value("outbox_backlog", {"outbox": "orders"}) == 6

    assert [await relay.relay_once() for _ in range(3)] == [4, 2, 0]

    await relay.record_backlog()
    assert registry.get_sample_value("outbox_backlog", {"outbox": "orders"}) == 0
    assert registry.get_sample_value("outbox_oldest_age_seconds", {"outbox": "orders"}) == 0
    events = await bus.subscribe(TOPIC, "reader")
    audit = await bus.subscribe("orders.audit", "auditor")
    assert [d.envelope.sequence for d in await events.fetch(10, 0.1)] == [1, 2, 3, 5, 6]
    assert [d.envelope.sequence for d in await audit.fetch(10, 0.1)] == [4]


async def test_the_backlog_is_the_count_and_the_age_of_the_oldest_row(
    sqlalchemy_engine: AsyncEngine, tables: Tables, outbox: SqlAlchemyOutbox
) -> None:
    await outbox.remove([])  # nothing to do
    assert await outbox.backlog() == (0, 0.0)
    async with sqlalchemy_engine.begin() as conn:
        await outbox.add(conn, TOPIC, make_envelopes(2))
        await conn.execute(tables.outbox.update().values(created_at=time.time() - 60.0))
        await outbox.add(conn, TOPIC, make_envelopes(1, start=3))

    count, age = await outbox.backlog()

    assert count == 3
    assert 60.0 <= age < 70.0


async def test_the_relay_publishes_under_the_trace_of_the_state_change(
    sqlalchemy_engine: AsyncEngine, outbox: SqlAlchemyOutbox, bus: InMemoryBus
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("place order") as span:
        async with sqlalchemy_engine.begin() as conn:
            await outbox.add(conn, TOPIC, make_envelopes(1), headers={"tenant": "t-1"})
    await OutboxRelay(outbox, bus).relay_once()
    [got] = await (await bus.subscribe(TOPIC, "reader")).fetch(1, 0.1)
    assert got.headers["tenant"] == "t-1"
    assert got.headers["traceparent"].split("-")[1] == format(
        span.get_span_context().trace_id, "032x"
    )


async def test_a_relay_failing_after_publish_republishes_and_nothing_is_doubled(
    sqlalchemy_engine: AsyncEngine,
    tables: Tables,
    outbox: SqlAlchemyOutbox,
    inbox: SqlAlchemyInbox,
    bus: InMemoryBus,
) -> None:
    async with sqlalchemy_engine.begin() as conn:
        await outbox.add(conn, TOPIC, make_envelopes(10))
    with pytest.raises(SimulatedCrashError):
        await OutboxRelay(outbox, CrashAfterPublishBus(bus)).relay_once()
    assert await OutboxRelay(outbox, bus).relay_once() == 10

    sub = await bus.subscribe(TOPIC, "inventory")
    batch = await sub.fetch(100, max_wait=0.5)
    await apply(sqlalchemy_engine, tables, inbox, batch)
    await sub.ack(batch)

    assert [d.envelope.sequence for d in batch] == list(range(1, 11))
    assert await applied(sqlalchemy_engine, tables) == 10
    assert list(await sub.fetch(100, max_wait=0.05)) == []


# ---------------------------------------------------------------- inbox


async def test_the_inbox_tells_new_ids_from_seen_ones(
    begin: Callable[[], Transaction], inbox: SqlAlchemyInbox, registry: CollectorRegistry
) -> None:
    first, second, third = make_envelopes(3)
    async with begin() as conn:
        assert await inbox.filter_new(conn, [first, second, first]) == [first, second]
    async with begin() as conn:
        assert await inbox.filter_new(conn, [second, third]) == [third]
        assert await inbox.filter_new(conn, []) == []
    labels = {"topic": "", "subscription": "inventory", "outcome": "duplicate_skipped"}
    assert registry.get_sample_value("messaging_messages_total", labels) == 2


async def test_inbox_ids_roll_back_with_the_effect(
    sqlalchemy_engine: AsyncEngine,
    begin: Callable[[], Transaction],
    tables: Tables,
    inbox: SqlAlchemyInbox,
) -> None:
    [envelope] = make_envelopes(1)
    with pytest.raises(IntegrityError):
        await add_then_fail(begin(), tables.orders, lambda c: inbox.filter_new(c, [envelope]))
    assert await inbox_ids(sqlalchemy_engine, tables) == set()
    async with begin() as conn:
        assert await inbox.filter_new(conn, [envelope]) == [envelope]


async def test_an_effect_committed_but_not_acked_is_applied_once(
    sqlalchemy_engine: AsyncEngine,
    tables: Tables,
    inbox: SqlAlchemyInbox,
    bus: InMemoryBus,
    registry: CollectorRegistry,
) -> None:
    await bus.publish(TOPIC, make_envelopes(5))
    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=0.2))
    await apply(sqlalchemy_engine, tables, inbox, await sub.fetch(100, max_wait=0.5))  # "crash"

    redelivered = await sub.fetch(100, max_wait=1.0)
    await apply(sqlalchemy_engine, tables, inbox, redelivered)
    await sub.ack(redelivered)

    assert {d.delivery_count for d in redelivered} == {2}
    assert await applied(sqlalchemy_engine, tables) == 5
    labels = {"topic": TOPIC, "subscription": "inventory", "outcome": "duplicate_skipped"}
    assert registry.get_sample_value("messaging_messages_total", labels) == 5


async def test_a_concurrent_consumer_of_the_same_id_waits_and_skips_it(
    sqlalchemy_engine: AsyncEngine, inbox: SqlAlchemyInbox
) -> None:
    [envelope] = make_envelopes(1)

    async def second_consumer() -> list[object]:
        async with sqlalchemy_engine.begin() as conn:
            return list(await inbox.filter_new(conn, [envelope]))

    async with sqlalchemy_engine.connect() as first:
        transaction = await first.begin()
        assert await inbox.filter_new(first, [envelope]) == [envelope]
        racing = asyncio.create_task(second_consumer())
        await asyncio.sleep(0.2)
        assert not racing.done()  # blocked on the first transaction (its row, or SQLite's lock)
        await transaction.commit()
        assert await racing == []


async def test_the_inbox_forgets_ids_older_than_its_window(
    begin: Callable[[], Transaction],
    sqlalchemy_engine: AsyncEngine,
    tables: Tables,
    inbox: SqlAlchemyInbox,
) -> None:
    async with begin() as conn:
        await inbox.filter_new(conn, make_envelopes(2))
    soon = time.time() + 10.0
    async with begin() as conn:
        assert await inbox.purge(conn, older_than=3600) == 0
        assert await inbox.purge(conn, older_than=20.0, now=soon) == 0
    async with begin() as conn:
        assert await inbox.purge(conn, older_than=5.0, now=soon) == 2
    assert await inbox_ids(sqlalchemy_engine, tables) == set()


async def test_the_retention_job_purges_the_inbox_in_its_own_transaction(
    sqlalchemy_engine: AsyncEngine, tables: Tables, inbox: SqlAlchemyInbox
) -> None:
    async with sqlalchemy_engine.begin() as conn:
        await inbox.filter_new(conn, make_envelopes(3))
    job = sqlalchemy_inbox_purge(inbox, sqlalchemy_engine, window=60.0)
    now = time.time()
    retention = Retention([job], clock=lambda: now + 120.0, registry=CollectorRegistry())

    assert job.name == f"inbox_{tables.inbox.name}"
    assert await job.remove(now) == 0
    assert await retention.run_once() == {job.name: 3}
    assert await inbox_ids(sqlalchemy_engine, tables) == set()


# ---------------------------------------------------------------- ORM session


class Order:
    """An ORM object of the state table (mapped per test: the table's name is the test's)."""

    def __init__(self, key: str, applied: int) -> None:
        self.id, self.applied = key, applied


async def test_orm_objects_outbox_rows_and_inbox_ids_share_the_session_transaction(
    sqlalchemy_engine: AsyncEngine, tables: Tables, outbox: SqlAlchemyOutbox, inbox: SqlAlchemyInbox
) -> None:
    mapper_registry = registry_of_mappers()
    mapper_registry.map_imperatively(Order, tables.orders)
    [seen, unseen] = make_envelopes(2)

    async def place(order: Order, envelope: Envelope, batch: list[Envelope]) -> list[Envelope]:
        async with AsyncSession(sqlalchemy_engine) as session, session.begin():
            session.add(order)  # flushed at the commit
            await outbox.add(session, TOPIC, [envelope])
            return await inbox.filter_new(session, batch)

    with pytest.raises(IntegrityError):  # "total" is taken: the flush at commit fails
        await place(Order("total", 1), seen, [seen])
    assert await place(Order("o-1", 1), unseen, [seen, unseen]) == [seen, unseen]

    assert [r.envelope for r in await outbox.claim(10)] == [unseen]
    assert await inbox_ids(sqlalchemy_engine, tables) == {seen.id, unseen.id}
    mapper_registry.dispose()
