"""The consumer and the outbox relay wait a jittered ``Backoff`` after failures, reset by success."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.messaging import (
    Consumer,
    Delivery,
    InMemoryBus,
    MessagingError,
    OutboxRecord,
    OutboxRelay,
    Subscription,
)
from stockflow_kit.messaging.testing import WrappedSubscription, make_envelopes
from stockflow_kit.resilience import Backoff
from stockflow_kit.resilience.testing import ManualClock

TOPIC = "orders.events"


class Top:
    """The jitter at its ceiling, so each delay is the cap of its attempt."""

    def random(self) -> float:
        return 1.0


class FlakyFetches(WrappedSubscription):
    """A subscription whose first *failures* fetches fail; the rest go to the real one."""

    def __init__(self, inner: Subscription, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        if self.failures:
            self.failures -= 1
            raise MessagingError("the broker is away")
        return await self.inner.fetch(max_messages, max_wait)


async def test_failed_fetches_back_off_exponentially_and_a_good_fetch_resets_the_backoff() -> None:
    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    await bus.publish(TOPIC, make_envelopes(2))
    clock = ManualClock()
    backoff = Backoff(base=0.1, cap=0.3, sleep=clock.sleep, rng=Top())
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        handled.set()

    flaky = FlakyFetches(await bus.subscribe(TOPIC, "patient"), failures=4)
    consumer = Consumer(flaky, handle, max_wait=0.01, backoff=backoff)
    with capture_logs() as logs:
        task = asyncio.create_task(consumer.run())
        await asyncio.wait_for(handled.wait(), 2)
        await consumer.stop()
        await task
    await bus.close()

    assert clock.sleeps == [0.1, 0.2, 0.3, 0.3]
    assert backoff.attempts == 0
    failed = [e for e in logs if e["event"] == "messaging.fetch_failed"]
    assert [e["attempt"] for e in failed] == [1, 2, 3, 4]


class FailingOutbox:
    """An empty outbox whose first *failures* claims fail."""

    name = "orders"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.claimed = asyncio.Event()

    async def claim(self, limit: int) -> Sequence[OutboxRecord]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database is away")
        self.claimed.set()
        return []

    async def remove(self, records: Sequence[OutboxRecord]) -> None:
        raise AssertionError("nothing was claimed")

    async def backlog(self) -> tuple[int, float]:
        return 0, 0.0


async def test_failed_relay_rounds_back_off_are_counted_and_a_good_round_resets_the_backoff() -> (
    None
):
    registry = CollectorRegistry()
    bus = InMemoryBus(registry=registry)
    await bus.start()
    clock = ManualClock()
    backoff = Backoff(base=0.05, cap=5.0, sleep=clock.sleep, rng=Top())
    outbox = FailingOutbox(failures=3)
    relay = OutboxRelay(outbox, bus, poll_interval=0.01, registry=registry, backoff=backoff)

    task = asyncio.create_task(relay.run())
    await asyncio.wait_for(outbox.claimed.wait(), 2)
    await relay.stop()
    await task
    await bus.close()

    assert clock.sleeps == [0.05, 0.1, 0.2]
    assert backoff.attempts == 0
    assert registry.get_sample_value("outbox_relay_errors_total", {"outbox": "orders"}) == 3
