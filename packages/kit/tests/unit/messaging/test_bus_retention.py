"""Retention: the log and the inboxes are cleaned on a schedule, with windows that line up."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.messaging import SqliteInbox, SqliteLogBus
from stockflow_kit.messaging.retention import (
    DAY,
    DEFAULT_INTERVAL,
    DEFAULT_LOG_RETENTION,
    Retention,
    RetentionJob,
    check_retention_windows,
    log_trim,
    sqlite_inbox_purge,
)
from stockflow_kit.messaging.testing import make_envelopes
from stockflow_kit.resilience.testing import ManualClock

TOPIC = "orders.events"
HOUR = 3600.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> ManualClock:
    """Wall-clock time in Unix seconds that moves only when the test says so."""
    return ManualClock(start=time.time())


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteLogBus]:
    bus = SqliteLogBus(f"sqlite:///{tmp_path / 'bus.sqlite3'}")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(tmp_path / "service.sqlite3")) as conn:
        yield conn


def removed(registry: CollectorRegistry, job: str) -> float:
    return registry.get_sample_value("messaging_retention_removed_total", {"job": job}) or 0.0


def failures(registry: CollectorRegistry, job: str) -> float:
    return registry.get_sample_value("messaging_retention_failures_total", {"job": job}) or 0.0


async def test_the_log_keeps_messages_until_every_durable_passed_them_and_the_window_ended(
    bus: SqliteLogBus, clock: ManualClock, registry: CollectorRegistry
) -> None:
    await bus.publish(TOPIC, make_envelopes(3))
    sub = await bus.subscribe(TOPIC, "inventory")
    await sub.ack(await sub.fetch(2, max_wait=0.1))  # the third is not passed yet
    retention = Retention([log_trim(bus)], clock=clock, registry=registry)

    clock.advance(DEFAULT_LOG_RETENTION - HOUR)
    assert await retention.run_once() == {"bus_log": 0}
    clock.advance(2 * HOUR)
    with capture_logs() as logs:
        assert await retention.run_once() == {"bus_log": 2}

    assert removed(registry, "bus_log") == 2
    assert [e for e in logs if e["event"] == "messaging.retention_ran"] == [
        {
            "event": "messaging.retention_ran",
            "log_level": "info",
            "job": "bus_log",
            "removed": 2,
            "window_seconds": DEFAULT_LOG_RETENTION,
        }
    ]
    [left] = await sub.fetch(10, max_wait=0.1)
    assert left.envelope.sequence == 3


async def test_inbox_ids_are_purged_once_older_than_their_window(
    conn: sqlite3.Connection, clock: ManualClock, registry: CollectorRegistry
) -> None:
    inbox = SqliteInbox(table="processed", registry=registry)
    inbox.create_schema(conn)
    with conn:
        inbox.filter_new(conn, make_envelopes(4))
    retention = Retention(
        [sqlite_inbox_purge(inbox, conn, window=7 * DAY)], clock=clock, registry=registry
    )

    clock.advance(7 * DAY - HOUR)
    assert await retention.run_once() == {"inbox_processed": 0}
    clock.advance(2 * HOUR)
    assert await retention.run_once() == {"inbox_processed": 4}

    assert conn.execute("SELECT count(*) FROM processed").fetchone() == (0,)
    assert not conn.in_transaction  # the purge was committed
    assert removed(registry, "inbox_processed") == 4


async def test_a_failing_job_is_logged_counted_and_does_not_stop_the_others(
    tmp_path: Path, clock: ManualClock, registry: CollectorRegistry
) -> None:
    closed = SqliteLogBus(f"sqlite:///{tmp_path / 'never-started.sqlite3'}")
    ran: list[float] = []

    async def count_calls(now: float) -> int:
        ran.append(now)
        return 0

    retention = Retention(
        [log_trim(closed), RetentionJob("other", DAY, count_calls)], clock=clock, registry=registry
    )
    with capture_logs() as logs:
        assert await retention.run_once() == {"other": 0}

    assert ran == [clock()]
    assert failures(registry, "bus_log") == 1
    [failed] = [e for e in logs if e["event"] == "messaging.retention_failed"]
    assert failed["job"] == "bus_log"
    assert "BusClosedError" in failed["error"]


async def test_rounds_repeat_every_interval_until_cancelled(
    clock: ManualClock, registry: CollectorRegistry
) -> None:
    rounds: list[float] = []
    three = asyncio.Event()

    async def record(now: float) -> int:
        rounds.append(now)
        if len(rounds) == 3:
            three.set()
        return 1

    retention = Retention(
        [RetentionJob("job", DAY, record)], clock=clock, sleep=clock.sleep, registry=registry
    )
    task = asyncio.create_task(retention.run())
    await asyncio.wait_for(three.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    start = rounds[0]
    assert rounds[:3] == [start, start + DEFAULT_INTERVAL, start + 2 * DEFAULT_INTERVAL]
    assert removed(registry, "job") >= 3


def test_job_names_must_be_unique_and_the_interval_positive() -> None:
    async def nothing(now: float) -> int:
        return 0

    with pytest.raises(ValueError, match="unique"):
        Retention([RetentionJob("a", DAY, nothing), RetentionJob("a", DAY, nothing)])
    with pytest.raises(ValueError, match="positive"):
        Retention([], interval=0)


def test_the_default_log_retention_lines_up_with_a_seven_day_processed_window() -> None:
    check_retention_windows(log_retention=DEFAULT_LOG_RETENTION, processed_retention=7 * DAY)


def test_a_log_kept_as_long_as_the_processed_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="process a message twice"):
        check_retention_windows(log_retention=7 * DAY, processed_retention=7 * DAY)
