"""The SQLite log waits for news instead of polling: wakeups, the file watch, redelivery timing."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockflow_kit.messaging import ConsumerConfig, SqliteLogBus
from stockflow_kit.messaging._sqlite_watch import DataVersionWatch
from stockflow_kit.messaging.testing import make_envelopes

TOPIC = "orders.events"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bus.sqlite3'}?max_poll_interval=0.2"


@pytest.fixture
async def bus(url: str) -> AsyncIterator[SqliteLogBus]:
    bus = SqliteLogBus(url)
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def deaf_bus(tmp_path: Path) -> AsyncIterator[SqliteLogBus]:
    """A bus whose file watch reads every 10 s: only its own wakeups and timers can wake it."""
    bus = SqliteLogBus(f"sqlite:///{tmp_path / 'deaf.sqlite3'}", poll_interval=10.0)
    await bus.start()
    yield bus
    await bus.close()


def count_claims(bus: SqliteLogBus) -> list[str]:
    """Record the write transactions the bus's store connection begins from now on."""
    begun: list[str] = []
    bus.store().conn.set_trace_callback(
        lambda sql: begun.append(sql) if sql.startswith("BEGIN IMMEDIATE") else None
    )
    return begun


def test_the_idle_poll_bound_comes_from_the_url_or_the_argument() -> None:
    assert SqliteLogBus("sqlite:///x.sqlite3").max_poll_interval == 0.5
    assert SqliteLogBus("sqlite:///x.sqlite3?max_poll_interval=1").max_poll_interval == 1.0
    assert SqliteLogBus("sqlite:///x.sqlite3", max_poll_interval=2.0).max_poll_interval == 2.0


async def test_an_idle_consumer_does_not_claim_on_every_fetch(bus: SqliteLogBus) -> None:
    sub = await bus.subscribe(TOPIC, "idle")
    assert list(await sub.fetch(10, max_wait=0.05)) == []
    await asyncio.sleep(0.05)  # the watch sees the bind's commit once
    assert list(await sub.fetch(10, max_wait=0.05)) == []
    begun = count_claims(bus)
    for _ in range(20):  # one second of a consumer loop with max_wait=0.05
        assert list(await sub.fetch(10, max_wait=0.05)) == []
    assert begun == []  # nothing happened, so nothing was claimed
    await bus.publish(TOPIC, make_envelopes(1))
    assert len(await sub.fetch(10, max_wait=0.05)) == 1


async def test_a_publish_of_the_same_bus_wakes_an_idle_fetch_at_once(
    deaf_bus: SqliteLogBus,
) -> None:
    sub = await deaf_bus.subscribe(TOPIC, "idle")
    assert list(await sub.fetch(10, max_wait=0.1)) == []

    async def publish_later() -> float:
        await asyncio.sleep(0.1)
        await deaf_bus.publish(TOPIC, make_envelopes(1))
        return time.monotonic()

    async with asyncio.TaskGroup() as tasks:
        published = tasks.create_task(publish_later())
        got = await sub.fetch(10, max_wait=5.0)
        received = time.monotonic()
    assert len(got) == 1
    assert received - published.result() < 0.1


async def test_an_idle_fetch_wakes_by_itself_when_a_delivery_expires(
    deaf_bus: SqliteLogBus,
) -> None:
    await deaf_bus.publish(TOPIC, make_envelopes(1))
    sub = await deaf_bus.subscribe(TOPIC, "slow", ConsumerConfig(ack_wait=0.3))
    [first] = await sub.fetch(10, max_wait=1.0)
    started = time.monotonic()
    [again] = await sub.fetch(10, max_wait=5.0)  # nobody publishes: only the expiry wakes it
    waited = time.monotonic() - started
    assert (again.envelope.id, again.delivery_count) == (first.envelope.id, 2)
    assert 0.2 < waited < 0.3 + 0.15


async def test_a_publish_by_another_bus_reaches_an_idle_fetch_within_the_poll_bound(
    bus: SqliteLogBus, url: str
) -> None:
    sub = await bus.subscribe(TOPIC, "idle")
    other = SqliteLogBus(url)  # its own wakeup: only the file watch tells this bus
    await other.start()

    async def publish_later() -> float:
        await asyncio.sleep(0.8)  # the watch reads every 40 ms by then
        await other.publish(TOPIC, make_envelopes(1))
        return time.monotonic()

    try:
        async with asyncio.TaskGroup() as tasks:
            published = tasks.create_task(publish_later())
            got = await sub.fetch(10, max_wait=5.0)
            received = time.monotonic()
    finally:
        await other.close()
    assert len(got) == 1
    assert received - published.result() < 0.8 / 20 + 0.1


def test_the_watch_reads_less_often_the_longer_the_file_is_quiet() -> None:
    conn = sqlite3.connect(":memory:")
    watch = DataVersionWatch(conn, lambda: None, poll_interval=0.005, max_poll_interval=0.5)
    assert [watch.interval(quiet) for quiet in (0.0, 0.1, 1.0, 5.0, 10.0, 600.0)] == [
        0.005,
        0.005,
        0.05,
        0.25,
        0.5,
        0.5,
    ]
    conn.close()


async def test_the_watch_backs_off_while_quiet_and_snaps_back_on_a_change(tmp_path: Path) -> None:
    path = str(tmp_path / "watched.sqlite3")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    changes = asyncio.Event()
    watch = DataVersionWatch(
        sqlite3.connect(path), changes.set, poll_interval=0.005, max_poll_interval=0.1
    )
    watch.start()
    try:
        await asyncio.sleep(2.5)  # quiet for 2 s and more: one read per 0.1 s
        reads = watch.reads
        await asyncio.sleep(0.5)
        assert watch.reads - reads <= 6  # a fixed 5 ms poll would make 100
        started = time.monotonic()
        writer.execute("INSERT INTO t VALUES (1)")
        await asyncio.wait_for(changes.wait(), 1.0)
        assert time.monotonic() - started <= 0.1 + 0.05
        reads = watch.reads
        await asyncio.sleep(0.05)  # polling fast again right after the change
        assert watch.reads - reads >= 3
    finally:
        await watch.stop()
        watch.conn.close()
        writer.close()
