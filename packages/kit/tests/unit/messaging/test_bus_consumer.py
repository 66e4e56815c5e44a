"""The consumer runner: ack on success, nak (then dead letter) on failure, metrics and context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.messaging import (
    DEAD_LETTER_REASON_HEADER,
    BusClosedError,
    Consumer,
    ConsumerConfig,
    Delivery,
    InMemoryBus,
    dead_letter_topic,
    per_message,
)
from stockflow_kit.messaging.testing import make_envelopes
from stockflow_kit.observability.correlation import get_causation_id, get_correlation_id

TOPIC = "orders.events"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def bus(registry: CollectorRegistry) -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus(registry=registry)
    await bus.start()
    yield bus
    await bus.close()


async def run_until(consumer: Consumer, done: asyncio.Event) -> None:
    """Run *consumer* until *done* is set (at most 2 s), then stop it."""
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(done.wait(), 2.0)
    finally:
        await consumer.stop()
        await task


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_handled_batch_is_acked_and_counted(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    await bus.publish(TOPIC, make_envelopes(5))
    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=0.2))
    seen: list[int] = []
    done = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        seen.extend(d.envelope.sequence for d in batch)
        if len(seen) == 5:
            done.set()

    await run_until(Consumer(sub, handle, max_wait=0.05, registry=registry), done)

    assert seen == [1, 2, 3, 4, 5]
    assert (await sub.lag()).pending == 0
    labels = {"topic": TOPIC, "subscription": "inventory"}
    assert sample(registry, "messaging_messages_total", **labels, outcome="acked") == 5
    assert sample(registry, "messaging_batch_size_count", subscription="inventory") == 1
    assert (
        sample(registry, "messaging_handler_duration_seconds_count", subscription="inventory") == 1
    )


async def test_a_failing_batch_is_redelivered_then_dead_lettered_never_dropped(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    [sent] = make_envelopes(1)
    await bus.publish(TOPIC, [sent])
    sub = await bus.subscribe(TOPIC, "inventory", ConsumerConfig(ack_wait=5.0, max_deliver=3))
    attempts: list[int] = []

    async def fail(batch: Sequence[Delivery]) -> None:
        attempts.extend(d.delivery_count for d in batch)
        raise ValueError("bad stock level")

    dead_sub = await bus.subscribe(dead_letter_topic(TOPIC), "dlq")
    with capture_logs() as logs:
        consumer = Consumer(sub, fail, max_wait=0.05, retry_delay=0.0, registry=registry)
        task = asyncio.create_task(consumer.run())
        [dead] = await dead_sub.fetch(1, max_wait=2.0)
        await consumer.stop()
        await task

    assert attempts == [1, 2, 3]
    assert dead.envelope == sent
    assert dead.headers[DEAD_LETTER_REASON_HEADER] == "ValueError: bad stock level"
    failures = [e for e in logs if e["event"] == "messaging.handler_failed"]
    assert len(failures) == 3
    assert failures[0]["message_ids"] == [sent.id]
    labels = {"topic": TOPIC, "subscription": "inventory"}
    assert sample(registry, "messaging_messages_total", **labels, outcome="nakked") == 3
    assert sample(registry, "messaging_messages_total", **labels, outcome="redelivered") == 2
    assert sample(registry, "messaging_messages_total", **labels, outcome="dead_lettered") == 1


async def test_a_per_message_handler_runs_under_the_envelopes_correlation(
    bus: InMemoryBus,
) -> None:
    envelopes = make_envelopes(2)
    await bus.publish(TOPIC, envelopes)
    sub = await bus.subscribe(TOPIC, "notifications")
    seen: list[tuple[str | None, str | None]] = []
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        seen.append((get_correlation_id(), get_causation_id()))
        if len(seen) == 2:
            done.set()

    await run_until(Consumer(sub, per_message(handle), max_wait=0.05), done)

    assert seen == [(e.correlation_id, e.id) for e in envelopes]
    assert get_correlation_id() is None


async def test_the_consumer_publishes_its_lag(
    bus: InMemoryBus, registry: CollectorRegistry
) -> None:
    sub = await bus.subscribe(TOPIC, "slow")
    await bus.publish(TOPIC, make_envelopes(3))
    release = asyncio.Event()

    async def block(batch: Sequence[Delivery]) -> None:
        await release.wait()

    consumer = Consumer(sub, block, batch_size=1, max_wait=0.05, registry=registry)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.05)
    pending = sample(registry, "messaging_consumer_pending", subscription="slow")
    release.set()
    await consumer.stop()
    await task
    assert pending == 3
    assert sample(registry, "messaging_consumer_oldest_age_seconds", subscription="slow") >= 0


async def test_stop_waits_for_the_batch_in_hand(bus: InMemoryBus) -> None:
    await bus.publish(TOPIC, make_envelopes(1))
    sub = await bus.subscribe(TOPIC, "careful")
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(batch: Sequence[Delivery]) -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.set()

    consumer = Consumer(sub, slow, max_wait=0.05)
    task = asyncio.create_task(consumer.run())
    await started.wait()
    await consumer.stop()
    assert finished.is_set()
    await task
    assert (await sub.lag()).pending == 0


async def test_a_closed_bus_ends_the_run_with_an_error(bus: InMemoryBus) -> None:
    sub = await bus.subscribe(TOPIC, "orphan")

    async def handle(batch: Sequence[Delivery]) -> None:
        raise AssertionError("nothing was published")

    consumer = Consumer(sub, handle, max_wait=0.05)
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.02)
    await bus.close()
    with pytest.raises(BusClosedError):
        await task


@pytest.mark.parametrize("max_in_flight", [1, 2])
async def test_max_in_flight_bounds_the_batches_in_the_handler_at_once(
    bus: InMemoryBus, registry: CollectorRegistry, max_in_flight: int
) -> None:
    await bus.publish(TOPIC, make_envelopes(6, subject="s"))
    subscription = await bus.subscribe(TOPIC, "pipelined", ConsumerConfig(ack_wait=30))
    inside: list[int] = []
    peak = 0
    release = asyncio.Event()
    seen: list[str] = []
    all_seen = asyncio.Event()

    async def handler(batch: Sequence[Delivery]) -> None:
        nonlocal peak
        seen.extend(d.envelope.id for d in batch)
        if len(seen) >= 6:
            all_seen.set()
        inside.append(1)
        peak = max(peak, len(inside))
        await release.wait()
        inside.pop()

    consumer = Consumer(
        subscription,
        handler,
        batch_size=2,
        max_wait=0.01,
        registry=registry,
        max_in_flight=max_in_flight,
    )
    task = asyncio.create_task(consumer.run())
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert peak == max_in_flight
    release.set()
    await asyncio.wait_for(all_seen.wait(), 5)
    await consumer.stop()
    await task
    assert len(set(seen)) == 6
    assert (await subscription.lag()).pending == 0  # every batch was acked


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        Consumer(object(), per_message(lambda d: asyncio.sleep(0)), max_in_flight=0)  # type: ignore[arg-type]
