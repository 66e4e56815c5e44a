"""The consumers and the relay through ``bootstrap.build`` on the in-memory bus."""

from __future__ import annotations

import uuid

from tests.inventory.crash.worker_process import eventually

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC, EVENTS_TOPIC
from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.inventory.bootstrap import InventoryService
from stockflow.inventory.domain.commands import ReceiveStock
from stockflow_kit.messaging import (
    DEAD_LETTER_REASON_HEADER,
    Delivery,
    Envelope,
    InMemoryBus,
    Subscription,
)


def envelope(kind: str, data: dict[str, object], *, id: str | None = None) -> Envelope:  # noqa: A002
    return Envelope.new(kind, data, source="test", subject="x", id=id or str(uuid.uuid4()))


async def test_commands_and_order_events_from_the_bus_are_applied_once(
    service: InventoryService, bus: InMemoryBus
) -> None:
    receipt = envelope("ReceiveStock", {"sku": "A", "qty": 10})
    await bus.publish(COMMANDS_TOPIC, [receipt, receipt])

    async def received() -> bool:
        return await service.store.get_stock("A") is not None

    await eventually(received)  # the two topics are consumed independently: order them here
    await bus.publish(
        ORDERS_EVENTS_TOPIC,
        [
            envelope(
                "OrderPlaced",
                {"order_id": "o-1", "customer_id": "c", "lines": [{"sku": "A", "qty": 4}]},
            ),
            envelope("OrderConfirmed", {"order_id": "o-1"}),
            envelope("OrderShipped", {"order_id": "o-1", "lines": [{"sku": "A", "qty": 4}]}),
        ],
    )

    async def settled() -> bool:
        row = await service.store.get_stock("A")
        return row is not None and row.reserved == 0 and row.on_hand == 6

    await eventually(settled)
    types = [e.type for e in await service.store.read_stream("A")]
    assert types == ["StockReceived", "StockReserved", "LowStockDetected", "StockShipped"]


async def test_a_malformed_message_is_dead_lettered_and_the_rest_applied(
    service: InventoryService, bus: InMemoryBus
) -> None:
    dead = await bus.subscribe("deadletter.inventory", "test-dead")
    await bus.publish(
        COMMANDS_TOPIC,
        [
            envelope("ReceiveStock", {"sku": "A", "qty": "many"}),
            envelope("Teleport", {"sku": "A"}),
            envelope("ReceiveStock", {"sku": "A", "qty": 2}),
        ],
    )

    async def applied() -> bool:
        return await service.store.get_stock("A") is not None

    await eventually(applied)
    letters = await dead.fetch(10, 2.0)
    assert len(letters) == 2
    assert letters[0].headers[DEAD_LETTER_REASON_HEADER].startswith("MalformedMessageError")
    assert (
        service.registry.get_sample_value(
            "inventory_malformed_messages_total", {"topic": COMMANDS_TOPIC}
        )
        == 2
    )


async def test_committed_events_are_relayed_with_their_event_ids(
    service: InventoryService, bus: InMemoryBus
) -> None:
    events = await bus.subscribe(EVENTS_TOPIC, "test-events")
    await service.writer.submit(
        ReceiveStock(sku="A", qty=3), message_id="m-1", correlation_id="corr-1"
    )
    deliveries = await events.fetch(10, 3.0)
    (stored,) = await service.store.read_stream("A")
    assert [d.envelope.id for d in deliveries] == [str(stored.event_id)]
    published = deliveries[0].envelope
    assert (published.type, published.subject, published.sequence) == ("StockReceived", "A", 1)
    assert (published.causation_id, published.correlation_id) == ("m-1", "corr-1")
    assert published.data == {"sku": "A", "qty": 3, "reference": ""}

    async def checkpointed() -> bool:
        return await service.store.checkpoint("published") == stored.position

    await eventually(checkpointed)


async def test_the_events_of_a_traced_command_are_published_in_its_trace(
    service: InventoryService, bus: InMemoryBus
) -> None:
    """The event log keeps each event's trace context, so the relay publishes what a consumed
    message caused in that message's trace (no tracer is installed here: the context passes
    through as it came)."""
    events = await bus.subscribe(EVENTS_TOPIC, "test-traced")
    traces = ["a" * 32, "b" * 32]
    for trace_id, sku in zip(traces, ("T-1", "T-2"), strict=True):
        parent = f"00-{trace_id}-{'1' * 16}-01"
        await bus.publish(
            COMMANDS_TOPIC, [envelope("ReceiveStock", {"sku": sku, "qty": 1})], causes=[parent]
        )
    deliveries = await _published(events, 2)
    by_sku = {d.envelope.subject: d.headers["traceparent"].split("-")[1] for d in deliveries}
    assert by_sku == {"T-1": traces[0], "T-2": traces[1]}
    stored = {e.stream_id: e.traceparent for e in await service.store.read_all()}
    assert {sku: tp.split("-")[1] for sku, tp in stored.items() if tp} == by_sku


async def _published(events: Subscription, count: int) -> list[Delivery]:
    deliveries: list[Delivery] = []
    for _ in range(30):
        deliveries = [*deliveries, *await events.fetch(10, 0.2)]
        if len(deliveries) >= count:
            break
    return deliveries


async def test_every_event_of_a_command_from_the_bus_reaches_the_bus(
    service: InventoryService, bus: InMemoryBus
) -> None:
    """Commands and events share the ``inventory`` stream and its dedupe window: an event id
    equal to its command's id was dropped there as a duplicate (events are now id XOR i+1)."""
    events = await bus.subscribe(EVENTS_TOPIC, "test-all-published")
    receipt = envelope("ReceiveStock", {"sku": "C", "qty": 5})
    await bus.publish(COMMANDS_TOPIC, [receipt])
    (delivery,) = await _published(events, 1)
    assert delivery.envelope.type == "StockReceived"
    assert delivery.envelope.causation_id == receipt.id != delivery.envelope.id
