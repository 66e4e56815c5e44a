"""Sources and Consumers: translation, permanent errors dead-lettered at once, settling, readiness.

Run on the in-memory bus and on the SQLite log (the two buses of unit tests and of embedded).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.messaging import (
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    Bus,
    ConsumerConfig,
    Consumers,
    Delivery,
    Envelope,
    InMemoryBus,
    ItemsHandler,
    PermanentMessageError,
    Source,
    SqliteLogBus,
    dead_letter_topic,
    translated,
)

TOPIC = "orders.events"


def envelope(type_: str, n: int) -> Envelope:
    return Envelope.new(type_, {"n": n}, source="test", subject=f"sku-{n}", sequence=n)


def translate(env: Envelope) -> int | None:
    """``Counted`` → its n; ``Ignored`` → nothing to do; anything else is malformed."""
    if env.type == "Counted":
        return int(env.data["n"])
    if env.type == "Ignored":
        return None
    raise PermanentMessageError(f"unknown type {env.type!r}")


SOURCE = Source(TOPIC, "counter", translate)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(params=["memory", "sqlite"])
async def bus(
    request: pytest.FixtureRequest, tmp_path: Path, registry: CollectorRegistry
) -> AsyncIterator[Bus]:
    bus: Bus
    if request.param == "memory":
        bus = InMemoryBus(registry=registry)
    else:
        bus = SqliteLogBus(f"sqlite:///{tmp_path / 'bus.sqlite3'}", registry=registry)
    await bus.start()
    yield bus
    await bus.close()


class Recorder:
    """An items handler that records what it applied and can fail or block on demand."""

    def __init__(self, *, expected: int, failures: int = 0) -> None:
        self.applied: list[tuple[int, int]] = []  # (item, delivery_count)
        self.expected, self.failures = expected, failures
        self.done = asyncio.Event()
        self.release: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, pairs: Sequence[tuple[Delivery, int]]) -> None:
        self.entered.set()
        if self.release is not None:
            await self.release.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the effect failed")
        self.applied += [(item, delivery.delivery_count) for delivery, item in pairs]
        if len(self.applied) >= self.expected:
            self.done.set()


def consumers_of(bus: Bus, handler: ItemsHandler[int], **options: Any) -> Consumers[int]:
    return Consumers(
        bus,
        [SOURCE],
        lambda source: handler,
        config=ConsumerConfig(ack_wait=30.0),
        max_wait=0.05,
        **options,
    )


async def dead_letters(bus: Bus) -> list[Delivery]:
    dlq = await bus.subscribe(dead_letter_topic(TOPIC), "dlq")
    got = list(await dlq.fetch(100, max_wait=0.2))
    await dlq.ack(got)
    return got


async def pending(bus: Bus, durable: str = "counter") -> int:
    return (await (await bus.subscribe(TOPIC, durable)).lag()).pending


def dead_lettered(registry: CollectorRegistry, subscription: str = "counter") -> float:
    labels = {"topic": TOPIC, "subscription": subscription, "outcome": "dead_lettered"}
    return registry.get_sample_value("messaging_messages_total", labels) or 0.0


async def test_a_malformed_message_is_dead_lettered_at_once_and_the_rest_is_handled(
    bus: Bus, registry: CollectorRegistry
) -> None:
    bad = envelope("Garbled", 2)
    await bus.publish(TOPIC, [envelope("Counted", 1), bad, envelope("Counted", 3)])
    handler = Recorder(expected=2)
    consumers = consumers_of(bus, handler)
    with capture_logs() as logs:
        await consumers.start()
        await asyncio.wait_for(handler.done.wait(), 2.0)
        await consumers.stop()
    assert handler.applied == [(1, 1), (3, 1)]
    [dead] = await dead_letters(bus)
    assert dead.envelope == bad
    assert dead.headers[DEAD_LETTER_DELIVERY_COUNT_HEADER] == "1"
    assert dead.headers[DEAD_LETTER_SUBSCRIPTION_HEADER] == "counter"
    reason = "PermanentMessageError: unknown type 'Garbled'"
    assert dead.headers[DEAD_LETTER_REASON_HEADER] == reason
    assert dead_lettered(registry) == 1
    [line] = [e for e in logs if e["event"] == "messaging.message_rejected"]
    assert (line["message_id"], line["message_type"], line["reason"]) == (bad.id, "Garbled", reason)
    assert await pending(bus) == 0


async def test_a_message_translated_to_none_is_acked_without_effect(bus: Bus) -> None:
    await bus.publish(TOPIC, [envelope("Ignored", 1), envelope("Counted", 2)])
    handler = Recorder(expected=1)
    consumers = consumers_of(bus, handler)
    await consumers.start()
    await asyncio.wait_for(handler.done.wait(), 2.0)
    await consumers.stop()
    assert handler.applied == [(2, 1)]
    assert await dead_letters(bus) == []
    assert await pending(bus) == 0


async def test_a_batch_of_only_ignored_messages_never_calls_the_handler(bus: Bus) -> None:
    await bus.publish(TOPIC, [envelope("Ignored", 1), envelope("Ignored", 2)])
    sub = await bus.subscribe(TOPIC, "counter")
    handler = Recorder(expected=1)
    batch = await sub.fetch(10, max_wait=1.0)
    await translated(SOURCE, handler, subscription=sub)(batch)
    assert (len(batch), handler.entered.is_set()) == (2, False)


async def test_a_failed_effect_redelivers_the_batch_but_dead_letters_the_malformed_one_once(
    bus: Bus, registry: CollectorRegistry
) -> None:
    await bus.publish(TOPIC, [envelope("Counted", 1), envelope("Garbled", 2)])
    handler = Recorder(expected=1, failures=1)
    consumers = consumers_of(bus, handler, retry_delay=0.0)  # redeliver at once
    with capture_logs() as logs:
        await consumers.start()
        await asyncio.wait_for(handler.done.wait(), 2.0)
        await consumers.stop()
    assert handler.applied == [(1, 2)]  # failed once, then redelivered and applied
    assert [d.envelope.type for d in await dead_letters(bus)] == ["Garbled"]
    assert dead_lettered(registry) == 1
    assert len([e for e in logs if e["event"] == "messaging.message_rejected"]) == 1
    assert await pending(bus) == 0


async def test_stop_settles_the_batch_in_hand(bus: Bus) -> None:
    await bus.publish(TOPIC, [envelope("Counted", 1)])
    handler = Recorder(expected=1)
    handler.release = asyncio.Event()
    consumers = consumers_of(bus, handler)
    await consumers.start()
    await asyncio.wait_for(handler.entered.wait(), 2.0)
    stopping = asyncio.create_task(consumers.stop())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()  # waits for the batch in hand
    handler.release.set()
    await asyncio.wait_for(stopping, 2.0)
    assert handler.applied == [(1, 1)]
    assert await pending(bus) == 0  # acked before the subscription closed


async def test_every_source_gets_its_own_durable_with_the_suffix(
    bus: Bus, registry: CollectorRegistry
) -> None:
    other = Source("orders.audit", "auditor", translate)
    await bus.publish(TOPIC, [envelope("Garbled", 1), envelope("Counted", 3)])
    await bus.publish("orders.audit", [envelope("Counted", 2)])
    handlers = {SOURCE.topic: Recorder(expected=1), other.topic: Recorder(expected=1)}
    consumers = Consumers(
        bus,
        [SOURCE, other],
        lambda source: handlers[source.topic],
        max_wait=0.05,
        durable_suffix="-r1",
        registry=registry,
        name="counting",
    )
    await consumers.start()
    for handler in handlers.values():  # the malformed one was dead-lettered before the effect
        await asyncio.wait_for(handler.done.wait(), 2.0)
    assert [consumers.durable(s) for s in consumers.sources] == ["counter-r1", "auditor-r1"]
    await consumers.stop()
    assert dead_lettered(registry, "counter-r1") == 1
    [dead] = await dead_letters(bus)
    assert dead.headers[DEAD_LETTER_SUBSCRIPTION_HEADER] == "counter-r1"
    assert handlers[other.topic].applied == [(2, 1)]


async def test_readiness_tells_not_started_running_and_failed(bus: Bus) -> None:
    consumers = consumers_of(bus, Recorder(expected=1), name="counting")
    assert consumers.name == "counting"
    assert await consumers.readiness() == "counting: not started"
    assert not consumers.running
    await consumers.start()
    assert (await consumers.readiness(), consumers.running) == (None, True)
    await bus.close()  # the consumers did not ask for it: their runs end with an error
    for _ in range(200):  # the runs notice within one fetch (max_wait=0.05)
        if (reason := await consumers.readiness()) is not None:
            break
        await asyncio.sleep(0.01)
    assert not consumers.running
    assert reason is not None
    assert reason.startswith("counting: consumer 'counter' failed: BusClosedError")
    await consumers.stop()
    assert await consumers.readiness() == "counting: not started"


async def test_a_stop_right_after_start_ends_every_consumer(bus: Bus) -> None:
    consumers = consumers_of(bus, Recorder(expected=1))
    await consumers.start()
    await asyncio.wait_for(consumers.stop(), 2.0)
    assert not consumers.running


@runtime_checkable
class Component(Protocol):
    """The shape of ``stockflow_kit.lifecycle.Component`` (written on another branch)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def readiness(self) -> str | None: ...


def test_consumers_have_the_shape_of_a_lifecycle_component() -> None:
    consumers = Consumers(InMemoryBus(), [SOURCE], lambda source: Recorder(expected=1))
    component: Component = consumers  # the static check (mypy)
    assert isinstance(consumers, Component)  # the runtime check
    assert component.name == "consumers"
