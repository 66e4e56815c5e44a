"""The SQLite outbox and inbox: same transaction as the state change, ordered relay, dedupe."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import (
    InMemoryBus,
    OutboxRelay,
    SqliteInbox,
    SqliteOutbox,
)
from stockflow_kit.messaging.testing import make_envelopes

TOPIC = "orders.events"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "orders.sqlite3")


@pytest.fixture
def conn(db_path: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
    yield conn
    conn.close()


@pytest.fixture
def outbox(db_path: str, conn: sqlite3.Connection) -> Iterator[SqliteOutbox]:
    outbox = SqliteOutbox(db_path, name="orders")
    outbox.create_schema(conn)
    conn.commit()
    yield outbox
    outbox.close()


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    await bus.start()
    yield bus
    await bus.close()


def add_then_fail(conn: sqlite3.Connection, add: Callable[[], object]) -> None:
    """Run *add* in a transaction whose state change then violates a constraint."""
    with conn:
        add()
        conn.execute("INSERT INTO orders VALUES ('o-1'), ('o-1')")


async def test_outbox_rows_commit_and_roll_back_with_the_state_change(
    conn: sqlite3.Connection, outbox: SqliteOutbox
) -> None:
    with conn:
        conn.execute("INSERT INTO orders VALUES ('o-1')")
        outbox.add(conn, TOPIC, make_envelopes(2))
    with pytest.raises(sqlite3.IntegrityError):
        add_then_fail(conn, lambda: outbox.add(conn, TOPIC, make_envelopes(1, start=3)))
    assert [r.envelope.sequence for r in await outbox.claim(10)] == [1, 2]


async def test_the_relay_publishes_in_order_and_removes_what_the_bus_took(
    conn: sqlite3.Connection, outbox: SqliteOutbox, bus: InMemoryBus
) -> None:
    registry = CollectorRegistry()
    with conn:
        outbox.add(conn, TOPIC, make_envelopes(3))
        outbox.add(conn, "orders.audit", make_envelopes(1, start=4))
        outbox.add(conn, TOPIC, make_envelopes(2, start=5))
    relay = OutboxRelay(outbox, bus, batch_size=4, registry=registry)
    await relay.record_backlog()
    assert registry.get_sample_value("outbox_backlog", {"outbox": "orders"}) == 6

    assert await relay.relay_once() == 4
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0

    await relay.record_backlog()
    assert registry.get_sample_value("outbox_backlog", {"outbox": "orders"}) == 0
    assert registry.get_sample_value("outbox_oldest_age_seconds", {"outbox": "orders"}) == 0
    events = await bus.subscribe(TOPIC, "reader")
    audit = await bus.subscribe("orders.audit", "auditor")
    assert [d.envelope.sequence for d in await events.fetch(10, 0.1)] == [1, 2, 3, 5, 6]
    assert [d.envelope.sequence for d in await audit.fetch(10, 0.1)] == [4]


async def test_the_relay_publishes_under_the_trace_of_the_state_change(
    conn: sqlite3.Connection, outbox: SqliteOutbox, bus: InMemoryBus
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("place order") as span, conn:
        outbox.add(conn, TOPIC, make_envelopes(1))
    await OutboxRelay(outbox, bus).relay_once()
    [got] = await (await bus.subscribe(TOPIC, "reader")).fetch(1, 0.1)
    assert got.headers["traceparent"].split("-")[1] == format(
        span.get_span_context().trace_id, "032x"
    )


def test_the_inbox_tells_new_ids_from_seen_ones(conn: sqlite3.Connection) -> None:
    registry = CollectorRegistry()
    inbox = SqliteInbox(name="inventory", registry=registry)
    inbox.create_schema(conn)
    first, second, third = make_envelopes(3)
    with conn:
        assert inbox.filter_new(conn, [first, second, first]) == [first, second]
    with conn:
        assert inbox.filter_new(conn, [second, third]) == [third]
    assert inbox.filter_new(conn, []) == []
    labels = {"topic": "", "subscription": "inventory", "outcome": "duplicate_skipped"}
    assert registry.get_sample_value("messaging_messages_total", labels) == 2


def test_inbox_ids_roll_back_with_the_effect(conn: sqlite3.Connection) -> None:
    inbox = SqliteInbox()
    inbox.create_schema(conn)
    [envelope] = make_envelopes(1)
    with pytest.raises(sqlite3.IntegrityError):
        add_then_fail(conn, lambda: inbox.filter_new(conn, [envelope]))
    with conn:
        assert inbox.filter_new(conn, [envelope]) == [envelope]


def test_the_inbox_forgets_ids_older_than_its_window(conn: sqlite3.Connection) -> None:
    inbox = SqliteInbox()
    inbox.create_schema(conn)
    with conn:
        inbox.filter_new(conn, make_envelopes(2))
    with conn:
        assert inbox.purge(conn, older_than=3600) == 0
        assert inbox.purge(conn, older_than=-1) == 2


def test_table_names_must_be_plain_identifiers(db_path: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        SqliteOutbox(db_path, table="outbox; DROP TABLE orders")
    with pytest.raises(ValueError, match="identifier"):
        SqliteInbox(table="inbox--")
