"""Crashes around the outbox and the inbox lose nothing and double nothing (SQLite + SqliteLogBus).

Two windows are attacked, each with an injected failure and with a real process killed by
SIGKILL: between publishing and removing outbox rows (the relay republishes, the bus dedupes)
and between committing an effect and acking (the bus redelivers, the inbox skips).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import (
    Consumer,
    ConsumerConfig,
    Delivery,
    OutboxRelay,
    SqliteInbox,
    SqliteLogBus,
    SqliteOutbox,
    Subscription,
)
from stockflow_kit.messaging.testing import (
    CrashAfterPublishBus,
    SimulatedCrashError,
    make_envelopes,
)

TOPIC = "orders.events"
ACK_WAIT = 0.3

HANG_AFTER_PUBLISH = """
import asyncio, sys
from stockflow_kit.messaging import OutboxRelay, SqliteLogBus, SqliteOutbox

class HangAfterPublish:
    def __init__(self, bus):
        self.bus = bus
    async def publish(self, topic, envelopes, *, headers=None):
        await self.bus.publish(topic, envelopes, headers=headers)
        print("published", len(envelopes), flush=True)
        await asyncio.sleep(3600)

async def main(db, bus_url):
    bus = SqliteLogBus(bus_url)
    await bus.start()
    await OutboxRelay(SqliteOutbox(db), HangAfterPublish(bus)).relay_once()

asyncio.run(main(*sys.argv[1:3]))
"""

HANG_BEFORE_ACK = """
import asyncio, sqlite3, sys
from stockflow_kit.messaging import ConsumerConfig, SqliteInbox, SqliteLogBus

async def main(db, bus_url, topic):
    bus = SqliteLogBus(bus_url)
    await bus.start()
    sub = await bus.subscribe(topic, "inventory", ConsumerConfig(ack_wait=float(sys.argv[4])))
    batch = await sub.fetch(100, max_wait=5.0)
    conn = sqlite3.connect(db)
    with conn:
        fresh = SqliteInbox().filter_new(conn, batch)
        conn.execute("UPDATE totals SET applied = applied + ?", (len(fresh),))
    print("committed", len(fresh), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:4]))
"""


@pytest.fixture
def bus_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bus.sqlite3'}"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "service.sqlite3")


@pytest.fixture
def conn(db_path: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode = WAL")
    with conn:
        conn.execute("CREATE TABLE totals (applied INTEGER NOT NULL)")
        conn.execute("INSERT INTO totals VALUES (0)")
    yield conn
    conn.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def inbox(conn: sqlite3.Connection, registry: CollectorRegistry) -> SqliteInbox:
    inbox = SqliteInbox(name="inventory", registry=registry)
    inbox.create_schema(conn)
    conn.commit()
    return inbox


@pytest.fixture
def outbox(db_path: str, conn: sqlite3.Connection) -> Iterator[SqliteOutbox]:
    outbox = SqliteOutbox(db_path)
    outbox.create_schema(conn)
    conn.commit()
    yield outbox
    outbox.close()


@pytest.fixture
async def bus(bus_url: str) -> AsyncIterator[SqliteLogBus]:
    bus = SqliteLogBus(bus_url)
    await bus.start()
    yield bus
    await bus.close()


def apply(conn: sqlite3.Connection, inbox: SqliteInbox, batch: Sequence[Delivery]) -> None:
    """The idempotent effect: count each message once, in the inbox's transaction."""
    with conn:
        fresh = inbox.filter_new(conn, batch)
        conn.execute("UPDATE totals SET applied = applied + ?", (len(fresh),))


def applied(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT applied FROM totals").fetchone()[0])


async def consume_all(
    sub: Subscription, conn: sqlite3.Connection, inbox: SqliteInbox, expected: int
) -> list[Delivery]:
    """Consume with the inbox until *expected* deliveries arrived, acking after each commit."""
    seen: list[Delivery] = []
    while len(seen) < expected:
        batch = await sub.fetch(100, max_wait=ACK_WAIT * 4)
        assert batch, f"only {len(seen)} of {expected} deliveries arrived"
        apply(conn, inbox, batch)
        await sub.ack(batch)
        seen.extend(batch)
    assert list(await sub.fetch(100, max_wait=0.05)) == []
    return seen


async def run_script(script: str, *args: str, expect: str) -> None:
    """Run *script* in a new interpreter, wait for its *expect* line, then SIGKILL it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
        assert line.decode().strip() == expect
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()


def store_order_events(conn: sqlite3.Connection, outbox: SqliteOutbox, count: int) -> None:
    with conn:
        outbox.add(conn, TOPIC, make_envelopes(count))


async def test_a_relay_failing_after_publish_republishes_and_nothing_is_doubled(
    conn: sqlite3.Connection, outbox: SqliteOutbox, inbox: SqliteInbox, bus: SqliteLogBus
) -> None:
    store_order_events(conn, outbox, 10)
    with pytest.raises(SimulatedCrashError):
        await OutboxRelay(outbox, CrashAfterPublishBus(bus)).relay_once()
    assert len(await outbox.claim(100)) == 10  # the rows survived the crash

    assert await OutboxRelay(outbox, bus).relay_once() == 10
    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=ACK_WAIT))
    seen = await consume_all(sub, conn, inbox, 10)

    assert [d.envelope.sequence for d in seen] == list(range(1, 11))
    assert applied(conn) == 10
    assert await outbox.claim(100) == []


async def test_a_relay_process_killed_after_publish_loses_and_doubles_nothing(
    conn: sqlite3.Connection,
    outbox: SqliteOutbox,
    inbox: SqliteInbox,
    bus: SqliteLogBus,
    db_path: str,
    bus_url: str,
) -> None:
    store_order_events(conn, outbox, 10)
    await run_script(HANG_AFTER_PUBLISH, db_path, bus_url, expect="published 10")
    assert len(await outbox.claim(100)) == 10

    assert await OutboxRelay(outbox, bus).relay_once() == 10
    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=ACK_WAIT))
    seen = await consume_all(sub, conn, inbox, 10)

    assert len({d.envelope.id for d in seen}) == 10
    assert applied(conn) == 10


async def test_an_effect_committed_but_not_acked_is_applied_once(
    conn: sqlite3.Connection, inbox: SqliteInbox, bus_url: str, registry: CollectorRegistry
) -> None:
    config = ConsumerConfig(ack_wait=ACK_WAIT)
    crashed = SqliteLogBus(bus_url)
    await crashed.start()
    await crashed.publish(TOPIC, make_envelopes(5))
    sub = await crashed.subscribe(TOPIC, "inventory", config)
    apply(conn, inbox, await sub.fetch(100, max_wait=1.0))
    await crashed.close()  # the ack never happens

    async with asyncio.timeout(5):
        bus = SqliteLogBus(bus_url)
        await bus.start()
        redelivered: list[Delivery] = []
        done = asyncio.Event()

        async def handle(batch: Sequence[Delivery]) -> None:
            apply(conn, inbox, batch)
            redelivered.extend(batch)
            if len(redelivered) == 5:
                done.set()

        consumer = Consumer(await bus.subscribe(TOPIC, "inventory", config), handle, max_wait=0.1)
        task = asyncio.create_task(consumer.run())
        await done.wait()
        await consumer.stop()
        await task
        lag = await (await bus.subscribe(TOPIC, "inventory", config)).lag()
        await bus.close()

    assert {d.delivery_count for d in redelivered} == {2}
    assert applied(conn) == 5
    assert lag.pending == 0
    labels = {"topic": TOPIC, "subscription": "inventory", "outcome": "duplicate_skipped"}
    assert registry.get_sample_value("messaging_messages_total", labels) == 5


async def test_a_consumer_process_killed_between_commit_and_ack_applies_once(
    conn: sqlite3.Connection, inbox: SqliteInbox, bus: SqliteLogBus, db_path: str, bus_url: str
) -> None:
    await bus.publish(TOPIC, make_envelopes(5))
    await run_script(HANG_BEFORE_ACK, db_path, bus_url, TOPIC, str(ACK_WAIT), expect="committed 5")
    assert applied(conn) == 5

    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=ACK_WAIT))
    seen = await consume_all(sub, conn, inbox, 5)

    assert {d.delivery_count for d in seen} == {2}
    assert applied(conn) == 5
