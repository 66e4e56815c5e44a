"""Reservations across SKUs: all lines or none, and idempotent on redelivery."""

from __future__ import annotations

import pytest

from stockflow.inventory.domain.commands import ReleaseReservation, ReserveStock
from stockflow.inventory.domain.errors import InvalidQuantityError, ReservationConflictError
from stockflow.inventory.domain.events import (
    Event,
    ReservationRejected,
    Shortfall,
    StockReceived,
    StockReserved,
)
from stockflow.inventory.domain.model import (
    INSUFFICIENT_STOCK,
    StockState,
    apply,
    decide_command,
    decide_reservation,
    fold,
)


def received(**on_hand: int) -> dict[str, StockState]:
    return {
        sku: fold(StockState(sku=sku), [StockReceived(sku=sku, qty=q)])
        for sku, q in on_hand.items()
    }


def applied(states: dict[str, StockState], events: list[Event]) -> dict[str, StockState]:
    states = dict(states)
    for event in events:
        states[event.sku] = apply(states.get(event.sku) or StockState(sku=event.sku), event)
    return states


def test_every_line_is_reserved_when_all_are_available() -> None:
    states = received(A=5, B=2)
    events = decide_reservation(states, "o1", [("A", 3), ("B", 2)], low_stock_threshold=0)
    assert events == [
        StockReserved(sku="A", order_id="o1", qty=3),
        StockReserved(sku="B", order_id="o1", qty=2),
    ]
    after = applied(states, events)
    assert (after["A"].available, after["B"].available) == (2, 0)
    assert after["A"].reservations == {"o1": 3}


def test_one_short_line_rejects_the_whole_order_and_lists_every_short_line() -> None:
    states = received(A=5, B=1, C=0)
    events = decide_reservation(states, "o1", [("A", 3), ("B", 2), ("C", 1), ("D", 1)])
    assert events == [
        ReservationRejected(
            sku="B",
            order_id="o1",
            reason=INSUFFICIENT_STOCK,
            lines=(
                Shortfall(sku="B", requested=2, available=1),
                Shortfall(sku="C", requested=1, available=0),
                Shortfall(sku="D", requested=1, available=0),
            ),
        )
    ]
    after = applied(states, events)
    assert [after[sku].reserved for sku in "ABC"] == [0, 0, 0]
    assert after["B"].version == states["B"].version + 1


def test_lines_of_the_same_sku_are_summed() -> None:
    events = decide_reservation(received(A=5), "o1", [("A", 2), ("A", 3)], low_stock_threshold=0)
    assert events == [StockReserved(sku="A", order_id="o1", qty=5)]


def test_a_redelivered_reservation_decides_nothing() -> None:
    command = ReserveStock(order_id="o1", lines=(("A", 3), ("B", 2)))
    states = applied(received(A=5, B=2), decide_command(received(A=5, B=2), command))
    assert decide_command(states, command) == []


def test_a_reservation_redelivered_after_a_partial_release_decides_nothing() -> None:
    command = ReserveStock(order_id="o1", lines=(("A", 3), ("B", 2)))
    states = applied(received(A=5, B=2), decide_command(received(A=5, B=2), command))
    states = applied(states, decide_command(states, ReleaseReservation(order_id="o1", skus=("A",))))
    assert decide_command(states, command) == []


def test_the_same_order_with_other_quantities_is_a_conflict() -> None:
    states = applied(received(A=5), decide_reservation(received(A=5), "o1", [("A", 3)]))
    with pytest.raises(ReservationConflictError) as caught:
        decide_reservation(states, "o1", [("A", 4)])
    assert (caught.value.held, caught.value.requested) == (3, 4)


@pytest.mark.parametrize("lines", [[], [("A", 0)], [("A", 1), ("B", -1)]])
def test_an_order_without_lines_or_with_a_non_positive_line_is_invalid(
    lines: list[tuple[str, int]],
) -> None:
    with pytest.raises(InvalidQuantityError):
        decide_reservation(received(A=5, B=5), "o1", lines)


def test_reserve_stock_names_its_skus_once_each() -> None:
    assert ReserveStock(order_id="o1", lines=(("B", 1), ("A", 1), ("B", 2))).skus == ("B", "A")
