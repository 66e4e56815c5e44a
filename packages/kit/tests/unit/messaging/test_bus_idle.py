"""Idle loops wake on work, and their safety-net wait grows while there is none (the idle cost)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import (
    Consumer,
    Delivery,
    IdleWait,
    InMemoryBus,
    OutboxRecord,
    OutboxRelay,
    Subscription,
)
from stockflow_kit.messaging.testing import WrappedSubscription, make_envelopes
from stockflow_kit.resilience.testing import ManualClock

TOPIC = "orders.events"


def test_the_wait_grows_with_the_quiet_time_and_snaps_back_when_work_is_found() -> None:
    clock = ManualClock()
    idle = IdleWait(0.05, 5.0, clock=clock)
    waits = []
    for quiet in (0.0, 1.0, 10.0, 100.0, 1000.0):
        clock.advance(quiet - clock())
        waits.append(idle.next())
    assert waits == [0.05, 0.05, 0.5, 5.0, 5.0]
    idle.found_work()
    assert idle.next() == 0.05
    clock.advance(20.0)
    assert idle.next() == 1.0


def test_the_longest_wait_is_never_below_the_shortest() -> None:
    assert IdleWait(2.0, 0.5).longest == 2.0
    with pytest.raises(ValueError, match="positive"):
        IdleWait(0.0, 1.0)


class RecordedFetches(WrappedSubscription):
    """A subscription that records the ``max_wait`` of each fetch and its result's size."""

    def __init__(self, inner: Subscription) -> None:
        super().__init__(inner)
        self.fetches: list[tuple[float, int]] = []

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        batch = await self.inner.fetch(max_messages, max_wait)
        self.fetches.append((max_wait, len(batch)))
        return batch


async def test_an_idle_consumer_fetches_with_a_growing_wait_and_a_message_resets_it() -> None:
    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        handled.set()

    subscription = RecordedFetches(await bus.subscribe(TOPIC, "idle"))
    consumer = Consumer(subscription, handle, max_wait=0.01, idle_max_wait=0.5)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(1.2)  # quiet: the waits grow from 0.01 towards quiet / 20
    await bus.publish(TOPIC, make_envelopes(1))
    await asyncio.wait_for(handled.wait(), 5)
    await asyncio.sleep(0.05)
    await consumer.stop()
    await task
    await bus.close()

    waits = [wait for wait, _ in subscription.fetches]
    delivered = next(i for i, (_, size) in enumerate(subscription.fetches) if size)
    assert waits[0] == 0.01
    assert waits[delivered] > 0.04, waits  # ~1.2 s quiet: a wait of ~0.06 s, not 0.01
    assert all(a <= b for a, b in itertools.pairwise(waits[: delivered + 1]))
    assert waits[delivered + 1] == pytest.approx(0.01, abs=0.005)  # snapped back
    # Without growth 1.2 s of 0.01 s fetches would be ~120 of them.
    assert delivered < 80, delivered


class EmptyOutbox:
    """An outbox with nothing in it that counts how often it is read."""

    name = "orders"

    def __init__(self) -> None:
        self.claims = 0
        self.backlogs = 0
        self.claimed = asyncio.Event()

    async def claim(self, limit: int) -> Sequence[OutboxRecord]:
        self.claims += 1
        self.claimed.set()
        return []

    async def remove(self, records: Sequence[OutboxRecord]) -> None:
        raise AssertionError("nothing was claimed")

    async def backlog(self) -> tuple[int, float]:
        self.backlogs += 1
        return 0, 0.0


async def test_an_idle_relay_reads_its_outbox_less_and_less_often() -> None:
    registry = CollectorRegistry()
    bus = InMemoryBus(registry=registry)
    await bus.start()
    outbox = EmptyOutbox()
    relay = OutboxRelay(outbox, bus, poll_interval=0.01, max_poll_interval=0.5, registry=registry)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(1.5)
    await relay.stop()
    await task
    await bus.close()

    # A fixed 0.01 s poll would claim ~150 times; growing with the quiet time it is ~20 + 20 *
    # ln(1.5 / 0.2) ~ 60. The backlog is read once, then at most every max_poll_interval.
    assert 2 <= outbox.claims < 100, outbox.claims
    assert outbox.backlogs <= 1 + 1.5 / 0.5 + 1, outbox.backlogs


async def test_notify_wakes_a_relay_whose_safety_net_wait_is_long() -> None:
    registry = CollectorRegistry()
    bus = InMemoryBus(registry=registry)
    await bus.start()
    outbox = EmptyOutbox()
    relay = OutboxRelay(outbox, bus, poll_interval=30.0, max_poll_interval=60.0, registry=registry)
    task = asyncio.create_task(relay.run())
    await asyncio.wait_for(outbox.claimed.wait(), 5)
    outbox.claimed.clear()
    relay.notify()
    await asyncio.wait_for(outbox.claimed.wait(), 5)  # not after the 30 s wait
    await relay.stop()
    await task
    await bus.close()
    assert outbox.claims == 2
