"""What the consumers make of messages: order events, LowStockDetected, and the rest."""

from __future__ import annotations

import pytest
from tests.notifications.conftest import low_stock, order_event

from stockflow.notifications.entrypoints.consumers import (
    MalformedEventError,
    inventory_item,
    order_item,
)
from stockflow_kit.messaging import Envelope


def test_an_order_event_carries_its_owner_order_and_reason() -> None:
    envelope = order_event("OrderRejected", "o-9", customer_id="bob", reason="timeout")
    item = order_item(envelope)
    assert (item.event_id, item.type, item.customer_id, item.order_id, item.reason) == (
        envelope.id,
        "OrderRejected",
        "bob",
        "o-9",
        "timeout",
    )
    assert item.occurred_at.endswith("Z")


def test_low_stock_is_kept_and_other_inventory_events_are_ignored() -> None:
    item = inventory_item(low_stock("SKU-7"))
    assert item is not None
    assert item.data["sku"] == "SKU-7"
    received = Envelope.new(
        "StockReceived", {"sku": "S", "qty": 1}, source="inventory", subject="S"
    )
    assert inventory_item(received) is None


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope.new("OrderPlaced", {"order_id": 5}, source="orders", subject="o"),
        Envelope.new("OrderExploded", {"order_id": "o"}, source="orders", subject="o"),
    ],
)
def test_a_malformed_or_unknown_order_event_is_permanent(envelope: Envelope) -> None:
    with pytest.raises(MalformedEventError):
        order_item(envelope)


def test_a_malformed_low_stock_event_is_permanent() -> None:
    bad = Envelope.new("LowStockDetected", {"sku": 1}, source="inventory", subject="S")
    with pytest.raises(MalformedEventError):
        inventory_item(bad)
