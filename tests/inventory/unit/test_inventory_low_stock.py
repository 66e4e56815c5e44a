"""``LowStockDetected``: once per downward crossing of the threshold."""

from __future__ import annotations

from stockflow.inventory.domain.commands import AdjustStock, ReceiveStock, ReleaseReservation
from stockflow.inventory.domain.events import (
    LowStockDetected,
    StockAdjusted,
    StockReceived,
    StockReserved,
)
from stockflow.inventory.domain.model import (
    DEFAULT_LOW_STOCK_THRESHOLD,
    StockState,
    decide,
    decide_reservation,
    fold,
)

THRESHOLD = 5


def received(qty: int) -> StockState:
    return fold(StockState(sku="A"), [StockReceived(sku="A", qty=qty)])


def test_a_reservation_crossing_the_threshold_is_detected() -> None:
    events = decide_reservation({"A": received(8)}, "o1", [("A", 4)], low_stock_threshold=THRESHOLD)
    assert events == [
        StockReserved(sku="A", order_id="o1", qty=4),
        LowStockDetected(sku="A", available=4, threshold=THRESHOLD),
    ]
    assert fold(received(8), events).low_stock_below == THRESHOLD


def test_an_adjustment_crossing_the_threshold_is_detected() -> None:
    events = decide(received(5), AdjustStock(sku="A", delta=-1), low_stock_threshold=THRESHOLD)
    assert events == [
        StockAdjusted(sku="A", delta=-1),
        LowStockDetected(sku="A", available=4, threshold=THRESHOLD),
    ]


def test_staying_below_the_threshold_is_not_detected_again() -> None:
    low = fold(
        received(8),
        decide_reservation({"A": received(8)}, "o1", [("A", 4)], low_stock_threshold=THRESHOLD),
    )
    assert decide(low, AdjustStock(sku="A", delta=-1), low_stock_threshold=THRESHOLD) == [
        StockAdjusted(sku="A", delta=-1)
    ]
    assert decide_reservation({"A": low}, "o2", [("A", 1)], low_stock_threshold=THRESHOLD) == [
        StockReserved(sku="A", order_id="o2", qty=1)
    ]


def test_climbing_back_to_the_threshold_rearms_the_detection() -> None:
    low = fold(
        received(8),
        decide_reservation({"A": received(8)}, "o1", [("A", 4)], low_stock_threshold=THRESHOLD),
    )
    back = fold(low, decide(low, ReleaseReservation(order_id="o1", skus=("A",))))
    assert back.low_stock_below is None
    events = decide(back, AdjustStock(sku="A", delta=-4), low_stock_threshold=THRESHOLD)
    assert events[-1] == LowStockDetected(sku="A", available=4, threshold=THRESHOLD)


def test_receiving_a_little_stock_below_the_threshold_is_no_crossing() -> None:
    assert decide(
        StockState(sku="A"), ReceiveStock(sku="A", qty=2), low_stock_threshold=THRESHOLD
    ) == [StockReceived(sku="A", qty=2)]


def test_a_threshold_of_zero_never_fires() -> None:
    events = decide(received(3), AdjustStock(sku="A", delta=-3), low_stock_threshold=0)
    assert events == [StockAdjusted(sku="A", delta=-3)]


def test_the_default_threshold_applies_when_none_is_given() -> None:
    start = received(DEFAULT_LOW_STOCK_THRESHOLD)
    assert decide(start, AdjustStock(sku="A", delta=-1))[-1] == LowStockDetected(
        sku="A", available=DEFAULT_LOW_STOCK_THRESHOLD - 1, threshold=DEFAULT_LOW_STOCK_THRESHOLD
    )


def test_a_lower_threshold_while_already_low_is_no_new_crossing() -> None:
    """The SKU stays flagged low until it climbs back to the threshold it was flagged at."""
    low = fold(
        received(5), decide(received(5), AdjustStock(sku="A", delta=-1), low_stock_threshold=5)
    )
    assert low.low_stock_below == 5
    assert decide(low, AdjustStock(sku="A", delta=-3), low_stock_threshold=3) == [
        StockAdjusted(sku="A", delta=-3)
    ]
