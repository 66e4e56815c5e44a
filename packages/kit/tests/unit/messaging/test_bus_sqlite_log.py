"""What the embedded log adds to the contract: URLs, several processes on one file, trimming."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stockflow_kit.messaging import SqliteLogBus, SubscribeError, make_bus
from stockflow_kit.messaging.testing import make_envelopes

TOPIC = "orders.events"

PUBLISHER = """
import asyncio, sys
from stockflow_kit.messaging import SqliteLogBus
from stockflow_kit.messaging.testing import make_envelopes

async def main(url):
    bus = SqliteLogBus(url)
    await bus.start()
    for start in range(1, 2001, 100):
        await bus.publish("orders.events", make_envelopes(100, subject="child", start=start))
    await bus.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bus.sqlite3'}"


@pytest.fixture
async def bus(url: str) -> AsyncIterator[SqliteLogBus]:
    bus = SqliteLogBus(url)
    await bus.start()
    yield bus
    await bus.close()


@pytest.mark.parametrize(
    "bad", ["sqlite://", "sqlite:///", "postgresql:///x", "sqlite:///x?synchronous=SOMETIMES"]
)
def test_a_url_that_names_no_usable_file_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        SqliteLogBus(bad)


def test_the_factory_builds_an_offloaded_bus_from_the_url() -> None:
    bus = make_bus("sqlite:///data/bus.sqlite3?offload=1&synchronous=full")
    assert isinstance(bus, SqliteLogBus)
    assert (bus.path, bus.offload, bus.synchronous) == ("data/bus.sqlite3", True, "FULL")


async def test_a_durable_stays_bound_to_its_topic(bus: SqliteLogBus) -> None:
    await bus.subscribe(TOPIC, "inventory")
    with pytest.raises(SubscribeError, match="bound to"):
        await bus.subscribe("orders.audit", "inventory")


async def test_a_publish_by_another_bus_on_the_file_wakes_a_waiting_fetch(
    bus: SqliteLogBus, url: str
) -> None:
    sub = await bus.subscribe(TOPIC, "inventory")
    other = SqliteLogBus(url)
    await other.start()

    async def publish_later() -> None:
        await asyncio.sleep(0.1)
        await other.publish(TOPIC, make_envelopes(1))

    started = time.monotonic()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(publish_later())
        got = await sub.fetch(10, max_wait=2.0)
    await other.close()
    assert len(got) == 1
    assert time.monotonic() - started < 0.5


async def test_processes_publishing_to_one_file_lose_nothing(bus: SqliteLogBus, url: str) -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, url)
    for start in range(1, 2001, 100):
        await bus.publish(TOPIC, make_envelopes(100, subject="parent", start=start))
    assert await child.wait() == 0

    sub = await bus.subscribe(TOPIC, "inventory")
    got = []
    while batch := await sub.fetch(1000, max_wait=0.1):
        got.extend(batch)
        await sub.ack(batch)
    for subject in ("parent", "child"):
        sequences = [d.envelope.sequence for d in got if d.envelope.subject == subject]
        assert sequences == list(range(1, 2001))


async def test_trim_deletes_only_what_every_durable_is_done_with(bus: SqliteLogBus) -> None:
    envelopes = make_envelopes(3)
    await bus.publish(TOPIC, envelopes)
    sub = await bus.subscribe(TOPIC, "inventory")
    await sub.ack(await sub.fetch(1, max_wait=0.1))
    await sub.fetch(1, max_wait=0.1)  # in flight: kept

    assert await bus.trim(older_than=3600) == 0
    assert await bus.trim(older_than=0) == 1
    # the trimmed id left the dedupe window and may be published again
    await bus.publish(TOPIC, envelopes)
    late = await bus.subscribe(TOPIC, "audit")
    assert [d.envelope.sequence for d in await late.fetch(10, max_wait=0.1)] == [2, 3, 1]
