"""Properties of the fold, for any sequence of commands: the "zero phantom stock" invariants."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.domain.errors import InventoryError
from stockflow.inventory.domain.events import (
    Event,
    LowStockDetected,
    StockAdjusted,
    StockReceived,
    StockReserved,
    StockShipped,
)
from stockflow.inventory.domain.model import StockState, apply, decide_command

SKUS = ("A", "B", "C")
sku = st.sampled_from(SKUS)
order_id = st.sampled_from(("o1", "o2", "o3", "o4"))
commands = st.one_of(
    st.builds(ReceiveStock, sku=sku, qty=st.integers(-1, 10)),
    st.builds(AdjustStock, sku=sku, delta=st.integers(-10, 10)),
    st.builds(
        ReserveStock,
        order_id=order_id,
        lines=st.lists(st.tuples(sku, st.integers(0, 6)), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(ReleaseReservation, order_id=order_id, skus=st.just(SKUS)),
    st.builds(ShipStock, order_id=order_id, skus=st.just(SKUS)),
)


class Ledger:
    """Folds events into states and, independently, sums what conservation is about."""

    def __init__(self) -> None:
        self.states = {s: StockState(sku=s) for s in SKUS}
        self.moved: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.low_since_climb: dict[str, int | None] = dict.fromkeys(SKUS)

    def record(self, events: list[Event]) -> None:
        for event in events:
            state = self.states[event.sku] = apply(self.states[event.sku], event)
            self.events[event.sku] += 1
            match event:
                case StockReceived(qty=qty):
                    self.moved[event.sku] += qty
                case StockAdjusted(delta=delta):
                    self.moved[event.sku] += delta
                case StockShipped(qty=qty):
                    self.moved[event.sku] -= qty
                case LowStockDetected(threshold=threshold):
                    assert self.low_since_climb[event.sku] is None, "detected twice in a row"
                    self.low_since_climb[event.sku] = threshold
            armed_at = self.low_since_climb[event.sku]
            if armed_at is not None and state.available >= armed_at:
                self.low_since_climb[event.sku] = None

    def check(self) -> None:
        for s, state in self.states.items():
            assert state.on_hand >= 0
            assert state.reserved >= 0
            assert state.available >= 0
            assert state.on_hand == self.moved[s]
            assert state.reserved == sum(state.reservations.values())
            assert state.version == self.events[s]


@settings(max_examples=300, deadline=None)
@given(script=st.lists(st.tuples(commands, st.integers(0, 6)), max_size=60))
def test_no_command_sequence_breaks_the_stock_invariants(
    script: list[tuple[Command, int]],
) -> None:
    """The low-stock threshold may change between commands (a configuration change)."""
    ledger = Ledger()
    for command, threshold in script:
        try:
            events = decide_command(ledger.states, command, low_stock_threshold=threshold)
        except InventoryError:
            continue
        ledger.record(events)
        ledger.check()
        if isinstance(command, ReleaseReservation | ShipStock) or any(
            isinstance(e, StockReserved) for e in events
        ):
            again = decide_command(ledger.states, command, low_stock_threshold=threshold)
            assert again == [], "a redelivered command changed something twice"
