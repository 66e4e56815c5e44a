"""Consuming events over the in-memory bus: each message takes effect once, even delivered
twice; LowStockDetected reaches webhooks only; a malformed message is dead-lettered."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from tests.notifications.conftest import (
    Notifications,
    client,
    eventually,
    low_stock,
    notifications_settings,
    order_event,
    publish_orders,
)

from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.notifications.bootstrap import build
from stockflow.notifications.entrypoints.consumers import ORDERS_DURABLE, order_item
from stockflow_kit.messaging import InMemoryBus, dead_letter_topic


async def test_a_message_delivered_twice_notifies_and_queues_once(
    bus: InMemoryBus, tmp_path: Path
) -> None:
    settings = notifications_settings(
        database_url=f"sqlite:///{tmp_path}/notifications.sqlite3",
        webhook_allowed_hosts=["127.0.0.1"],
    )
    first_service = build(settings, bus=bus, registry=CollectorRegistry())
    await first_service.start()
    async with client(first_service.app) as http:
        # A target that is never reached: the test looks at the queue, not at sending.
        webhook = await Notifications(bus, first_service, http, CollectorRegistry()).subscribe(
            "http://127.0.0.1:9/hook", ["OrderPlaced"]
        )
    await first_service.stop()

    # A consumer applies the message and dies before its ack: the bus redelivers it.
    envelope = order_event("OrderPlaced", "o-1", customer_id="alice")
    subscription = await bus.subscribe(ORDERS_EVENTS_TOPIC, ORDERS_DURABLE)
    await publish_orders(bus, envelope)
    first = await subscription.fetch(10, 1.0)
    assert [d.envelope.id for d in first] == [envelope.id]
    await first_service.handlers.on_events([(d, order_item(d.envelope)) for d in first])
    await subscription.nak(first)
    await subscription.close()

    registry = CollectorRegistry()
    service = build(settings, bus=bus, registry=registry)
    await service.start()
    try:
        async with client(service.app) as http:
            notifications = Notifications(bus, service, http, registry)
            await eventually(lambda: _lag(bus), lambda pending: pending == 0)
            duplicates = await eventually(
                lambda: _value(registry, "messaging_messages_total", outcome="duplicate_skipped"),
                lambda n: n >= 1,
            )
            assert duplicates == 1
            page = await notifications.notifications("alice")
            assert [n["id"] for n in page["notifications"]] == [envelope.id]
            assert len(await notifications.deliveries(webhook["id"])) == 1
    finally:
        await service.stop()


async def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def _lag(bus: InMemoryBus) -> int:
    subscription = await bus.subscribe(ORDERS_EVENTS_TOPIC, ORDERS_DURABLE)
    try:
        return (await subscription.lag()).pending
    finally:
        await subscription.close()


async def test_low_stock_goes_to_webhooks_and_to_no_customer(
    notifications: Notifications,
) -> None:
    webhook = await notifications.subscribe("http://127.0.0.1:9/hook", ["LowStockDetected"])
    other = await notifications.subscribe("http://127.0.0.1:9/other", ["OrderPlaced"])
    await notifications.bus.publish(EVENTS_TOPIC, [low_stock("SKU-1")])
    found = await eventually(lambda: notifications.deliveries(webhook["id"]), lambda d: len(d) == 1)
    assert found[0]["event_type"] == "LowStockDetected"
    assert await notifications.deliveries(other["id"]) == []
    assert (await notifications.notifications("alice"))["notifications"] == []


async def test_a_malformed_event_is_dead_lettered_and_the_rest_goes_on(
    notifications: Notifications,
) -> None:
    bus = notifications.bus
    dead = await bus.subscribe(dead_letter_topic(ORDERS_EVENTS_TOPIC), "probe-dead")
    bad = order_event("OrderPlaced", "o-1")
    bad = type(bad)(**{**{f: getattr(bad, f) for f in bad.__struct_fields__}, "data": {"x": 1}})
    good = order_event("OrderConfirmed", "o-2", customer_id="alice")
    await publish_orders(bus, bad, good)
    await eventually(
        lambda: notifications.notifications("alice"), lambda p: len(p["notifications"]) == 1
    )
    parked = await dead.fetch(10, 2.0)
    assert [d.envelope.id for d in parked] == [bad.id]
    await dead.ack(parked)
    await dead.close()
