"""Single-SKU decisions: receive, adjust, release, ship, and how ``apply`` folds them."""

from __future__ import annotations

import pytest

from stockflow.inventory.domain.commands import (
    AdjustStock,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.domain.errors import (
    BelowReservedError,
    InsufficientStockError,
    InvalidQuantityError,
)
from stockflow.inventory.domain.events import (
    Event,
    ReservationReleased,
    StockAdjusted,
    StockReceived,
    StockReserved,
    StockShipped,
)
from stockflow.inventory.domain.model import StockState, apply, decide, decide_command, fold

OFF = 0  # a low-stock threshold of 0 never fires; low stock has its own tests


def stock(on_hand: int = 0, **reservations: int) -> StockState:
    """SKU ``A`` after receiving ``on_hand`` and reserving ``reservations`` (order -> qty)."""
    events: list[Event] = [StockReceived(sku="A", qty=on_hand)] if on_hand else []
    events += [StockReserved(sku="A", order_id=o, qty=q) for o, q in reservations.items()]
    return fold(StockState(sku="A"), events)


def test_a_new_sku_has_nothing() -> None:
    state = StockState(sku="A")
    assert (state.on_hand, state.reserved, state.available, state.version) == (0, 0, 0, 0)
    assert state.reservations == {}


def test_receiving_stock_adds_to_on_hand() -> None:
    events = decide(
        stock(), ReceiveStock(sku="A", qty=5, reference="po-1"), low_stock_threshold=OFF
    )
    assert events == [StockReceived(sku="A", qty=5, reference="po-1")]
    state = fold(stock(), events)
    assert (state.on_hand, state.available, state.version) == (5, 5, 1)


@pytest.mark.parametrize("qty", [0, -1])
def test_receiving_nothing_or_less_is_invalid(qty: int) -> None:
    with pytest.raises(InvalidQuantityError) as caught:
        decide(stock(), ReceiveStock(sku="A", qty=qty))
    assert (caught.value.field, caught.value.value) == ("qty", qty)


@pytest.mark.parametrize("delta", [3, -2])
def test_an_adjustment_changes_on_hand_by_its_signed_delta(delta: int) -> None:
    events = decide(
        stock(5), AdjustStock(sku="A", delta=delta, reason="count"), low_stock_threshold=OFF
    )
    assert events == [StockAdjusted(sku="A", delta=delta, reason="count")]
    assert fold(stock(5), events).on_hand == 5 + delta


def test_an_adjustment_of_zero_is_invalid() -> None:
    with pytest.raises(InvalidQuantityError):
        decide(stock(5), AdjustStock(sku="A", delta=0))


def test_an_adjustment_never_leaves_less_on_hand_than_is_reserved() -> None:
    state = stock(10, o1=4)
    assert decide(state, AdjustStock(sku="A", delta=-6), low_stock_threshold=OFF)
    with pytest.raises(BelowReservedError) as caught:
        decide(state, AdjustStock(sku="A", delta=-7))
    assert (caught.value.on_hand, caught.value.reserved, caught.value.delta) == (10, 4, -7)


def test_an_adjustment_never_leaves_less_than_nothing() -> None:
    with pytest.raises(InsufficientStockError) as caught:
        decide(stock(3), AdjustStock(sku="A", delta=-4))
    assert (caught.value.sku, caught.value.on_hand, caught.value.delta) == ("A", 3, -4)


def test_releasing_gives_the_reserved_quantity_back() -> None:
    state = stock(10, o1=4, o2=1)
    events = decide(state, ReleaseReservation(order_id="o1", skus=("A",)), low_stock_threshold=OFF)
    assert events == [ReservationReleased(sku="A", order_id="o1", qty=4)]
    after = fold(state, events)
    assert (after.on_hand, after.reserved, after.available) == (10, 1, 9)
    assert after.reservations == {"o2": 1}


def test_shipping_commits_the_reservation() -> None:
    state = stock(10, o1=4)
    events = decide(state, ShipStock(order_id="o1", skus=("A",)))
    assert events == [StockShipped(sku="A", order_id="o1", qty=4)]
    after = fold(state, events)
    assert (after.on_hand, after.reserved, after.available) == (6, 0, 6)
    assert after.reservations == {}


@pytest.mark.parametrize(
    "command",
    [ReleaseReservation(order_id="o1", skus=("A",)), ShipStock(order_id="o1", skus=("A",))],
)
def test_releasing_or_shipping_twice_changes_nothing_the_second_time(
    command: ReleaseReservation | ShipStock,
) -> None:
    state = stock(10, o1=4)
    once = fold(state, decide(state, command))
    assert decide(once, command) == []


@pytest.mark.parametrize(
    "command",
    [ReleaseReservation(order_id="nope", skus=("A",)), ShipStock(order_id="nope", skus=("A",))],
)
def test_releasing_or_shipping_an_unknown_order_decides_nothing(
    command: ReleaseReservation | ShipStock,
) -> None:
    assert decide(stock(10, o1=4), command) == []


def test_release_and_ship_cover_every_sku_of_the_order() -> None:
    states = {
        "A": stock(10, o1=2),
        "B": fold(
            StockState(sku="B"),
            [StockReceived(sku="B", qty=3), StockReserved(sku="B", order_id="o1", qty=3)],
        ),
    }
    events = decide_command(states, ShipStock(order_id="o1", skus=("A", "B", "C")))
    assert events == [
        StockShipped(sku="A", order_id="o1", qty=2),
        StockShipped(sku="B", order_id="o1", qty=3),
    ]


def test_decide_refuses_a_reservation_which_spans_skus() -> None:
    with pytest.raises(TypeError):
        decide(stock(), ReserveStock(order_id="o1", lines=(("A", 1),)))  # type: ignore[arg-type]


def test_every_event_adds_one_to_the_version() -> None:
    state = stock(10, o1=4)
    assert state.version == 2
    assert apply(state, StockShipped(sku="A", order_id="o1", qty=4)).version == 3
