"""The published inventory schemas: the registry and their JSON round trip."""

from __future__ import annotations

import msgspec
import pytest

from stockflow.contracts import inventory as contracts


def test_the_registry_names_each_published_event_by_its_type() -> None:
    assert sorted(contracts.EVENT_TYPES) == [
        "LowStockDetected",
        "ReservationRejected",
        "ReservationReleased",
        "StockAdjusted",
        "StockReceived",
        "StockReserved",
        "StockShipped",
    ]
    assert all(name == cls.__name__ for name, cls in contracts.EVENT_TYPES.items())


def test_an_event_decodes_from_its_json_by_type_name() -> None:
    event = contracts.ReservationRejected(
        sku="B",
        order_id="o1",
        reason=contracts.REJECTION_INSUFFICIENT_STOCK,
        lines=(contracts.RejectedLine(sku="B", requested=2, available=1),),
    )
    payload = msgspec.json.encode(event)
    assert msgspec.json.decode(payload, type=contracts.EVENT_TYPES["ReservationRejected"]) == event


def test_a_published_quantity_must_be_positive() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"sku":"A","qty":0}', type=contracts.StockReceived)


def test_the_stock_view_carries_the_public_fields() -> None:
    view = contracts.StockView(sku="A", on_hand=5, reserved=2, available=3, version=4)
    assert msgspec.json.decode(msgspec.json.encode(view)) == {
        "sku": "A",
        "on_hand": 5,
        "reserved": 2,
        "available": 3,
        "version": 4,
    }
