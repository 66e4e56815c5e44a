"""Stock per SKU, in the explicit functional style: ``decide`` returns events, ``apply`` folds them.

A SKU's state is a value (:class:`StockState`); nothing here mutates or performs I/O. The
batching worker keeps one state per SKU in memory, decides a whole batch of commands against
those states and commits the resulting events at once (ADR 0003).

Idempotency (every handler must be; redeliveries change nothing twice):

- reserving for an order that already holds a reservation on any of its SKUs decides nothing;
- releasing or shipping an order that holds nothing on a SKU (never reserved, rejected, already
  released or shipped) decides nothing on that SKU: a no-op, not an error, so a redelivered
  cancel or ship is harmless;
- receipts and adjustments are not idempotent by content (two equal receipts are two
  deliveries); they, and a reservation redelivered after its order was settled, are deduplicated
  by message id in the store's inbox, committed with the events (ADR 0004).

Low stock: a ``LowStockDetected`` is decided when ``available`` crosses ``low_stock_threshold``
downwards (from ``>= threshold`` to ``< threshold``). The state remembers the threshold it was
signalled at (``low_stock_below``) until available climbs back to it, so one crossing yields one
event. A threshold of 0 disables the signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    OrderLine,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.domain.errors import (
    BelowReservedError,
    InsufficientStockError,
    InvalidQuantityError,
    ReservationConflictError,
)
from stockflow.inventory.domain.events import (
    Event,
    LowStockDetected,
    ReservationRejected,
    ReservationReleased,
    Shortfall,
    StockAdjusted,
    StockReceived,
    StockReserved,
    StockShipped,
)

__all__ = [
    "DEFAULT_LOW_STOCK_THRESHOLD",
    "INSUFFICIENT_STOCK",
    "StockState",
    "apply",
    "decide",
    "decide_command",
    "decide_reservation",
    "fold",
]

DEFAULT_LOW_STOCK_THRESHOLD: Final = 10
INSUFFICIENT_STOCK: Final = "insufficient_stock"


class StockState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One SKU after ``version`` events. ``reservations``: open order id -> held quantity.

    Treat ``reservations`` as read-only: :func:`apply` replaces it, never changes it.
    """

    sku: str
    on_hand: int = 0
    reserved: int = 0
    version: int = 0
    reservations: Mapping[str, int] = msgspec.field(default_factory=dict)
    low_stock_below: int | None = None
    stocked: bool | None = None
    """Whether anything but rejections ever happened to the SKU (a receipt first of all).
    ``None`` in snapshots written before the field existed: read as ``version > 0``."""

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def has_stock(self) -> bool:
        """Whether the SKU has a stock record: a reservation rejected for a SKU nobody ever
        received leaves an event in its stream, but no stock row (a GET is a 404)."""
        return self.stocked if self.stocked is not None else self.version > 0


def decide(
    state: StockState,
    command: ReceiveStock | AdjustStock | ReleaseReservation | ShipStock,
    *,
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD,
) -> list[Event]:
    """Decide a command about one SKU (for release and ship: this SKU's part of the order).

    Raises:
        InvalidQuantityError: a receipt of ``qty <= 0`` or an adjustment of ``delta == 0``.
        InsufficientStockError: the adjustment would leave ``on_hand < 0``.
        BelowReservedError: the adjustment would leave ``on_hand < reserved``.
    """
    match command:
        case ReceiveStock(qty=qty, reference=reference):
            if qty <= 0:
                raise InvalidQuantityError("qty", qty)
            return [StockReceived(sku=state.sku, qty=qty, reference=reference)]
        case AdjustStock(delta=delta, reason=reason):
            return _adjust(state, delta, reason, low_stock_threshold)
        case ReleaseReservation(order_id=order_id):
            held = state.reservations.get(order_id)
            if held is None:
                return []
            return [ReservationReleased(sku=state.sku, order_id=order_id, qty=held)]
        case ShipStock(order_id=order_id):
            held = state.reservations.get(order_id)
            if held is None:
                return []
            return [StockShipped(sku=state.sku, order_id=order_id, qty=held)]
    raise TypeError(f"cannot decide {type(command).__name__} on one SKU")


def _adjust(state: StockState, delta: int, reason: str, threshold: int) -> list[Event]:
    if delta == 0:
        raise InvalidQuantityError("delta", delta)
    on_hand = state.on_hand + delta
    if on_hand < 0:
        raise InsufficientStockError(state.sku, on_hand=state.on_hand, delta=delta)
    if on_hand < state.reserved:
        raise BelowReservedError(
            state.sku, on_hand=state.on_hand, reserved=state.reserved, delta=delta
        )
    events: list[Event] = [StockAdjusted(sku=state.sku, delta=delta, reason=reason)]
    events.extend(_low_stock(state, on_hand - state.reserved, threshold))
    return events


def _low_stock(state: StockState, available_after: int, threshold: int) -> list[Event]:
    if state.low_stock_below is None and state.available >= threshold > available_after:
        return [LowStockDetected(sku=state.sku, available=available_after, threshold=threshold)]
    return []


def decide_reservation(
    states: Mapping[str, StockState],
    order_id: str,
    lines: Sequence[OrderLine],
    *,
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD,
) -> list[Event]:
    """Reserve every line of an order, or none.

    Lines naming the same SKU are summed. A SKU missing from ``states`` has no stock yet.

    Returns:
        One ``StockReserved`` per SKU (each maybe followed by ``LowStockDetected``); or one
        ``ReservationRejected`` listing every short line, in the first short SKU's stream; or
        nothing when the order already holds its reservation.

    Raises:
        InvalidQuantityError: no lines, or a line with ``qty <= 0``.
        ReservationConflictError: the order holds a different quantity of one of its SKUs.
    """
    if not lines:
        raise InvalidQuantityError("lines", 0)
    wanted: dict[str, int] = {}
    for sku, qty in lines:
        if qty <= 0:
            raise InvalidQuantityError("qty", qty)
        wanted[sku] = wanted.get(sku, 0) + qty
    chosen = {sku: states.get(sku) or StockState(sku=sku) for sku in wanted}
    already_held = False
    for sku, qty in wanted.items():
        held = chosen[sku].reservations.get(order_id)
        if held is not None:
            if held != qty:
                raise ReservationConflictError(order_id, sku, held=held, requested=qty)
            already_held = True
    if already_held:
        return []
    short = tuple(
        Shortfall(sku=sku, requested=qty, available=chosen[sku].available)
        for sku, qty in wanted.items()
        if qty > chosen[sku].available
    )
    if short:
        return [
            ReservationRejected(
                sku=short[0].sku, order_id=order_id, reason=INSUFFICIENT_STOCK, lines=short
            )
        ]
    events: list[Event] = []
    for sku, qty in wanted.items():
        state = chosen[sku]
        events.append(StockReserved(sku=sku, order_id=order_id, qty=qty))
        events.extend(_low_stock(state, state.available - qty, low_stock_threshold))
    return events


def decide_command(
    states: Mapping[str, StockState],
    command: Command,
    *,
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD,
) -> list[Event]:
    """Decide any command against the states of the SKUs it names (``command.skus``).

    A SKU missing from ``states`` has no stock yet. Events come grouped by SKU, in stream order.
    """
    if isinstance(command, ReserveStock):
        return decide_reservation(
            states, command.order_id, command.lines, low_stock_threshold=low_stock_threshold
        )
    events: list[Event] = []
    for sku in dict.fromkeys(command.skus):  # a SKU named twice is decided once
        state = states.get(sku) or StockState(sku=sku)
        events.extend(decide(state, command, low_stock_threshold=low_stock_threshold))
    return events


def apply(state: StockState, event: Event) -> StockState:
    """The state after ``event``; every event, whatever its type, adds 1 to ``version``."""
    on_hand = state.on_hand
    reserved = state.reserved
    reservations = state.reservations
    low_stock_below = state.low_stock_below
    match event:
        case StockReceived(qty=qty):
            on_hand += qty
        case StockAdjusted(delta=delta):
            on_hand += delta
        case StockReserved(order_id=order_id, qty=qty):
            reserved += qty
            reservations = {**reservations, order_id: qty}
        case ReservationReleased(order_id=order_id, qty=qty):
            reserved -= qty
            reservations = _without(reservations, order_id)
        case StockShipped(order_id=order_id, qty=qty):
            on_hand -= qty
            reserved -= qty
            reservations = _without(reservations, order_id)
        case LowStockDetected(threshold=threshold):
            low_stock_below = threshold
        case ReservationRejected():
            pass
        case _:
            raise TypeError(f"cannot apply {type(event).__name__}")
    if low_stock_below is not None and on_hand - reserved >= low_stock_below:
        low_stock_below = None
    return StockState(
        sku=state.sku,
        on_hand=on_hand,
        reserved=reserved,
        version=state.version + 1,
        reservations=reservations,
        low_stock_below=low_stock_below,
        stocked=state.has_stock or not isinstance(event, ReservationRejected),
    )


def _without(reservations: Mapping[str, int], order_id: str) -> dict[str, int]:
    remaining = dict(reservations)
    del remaining[order_id]
    return remaining


def fold(state: StockState, events: Iterable[Event]) -> StockState:
    """``apply`` each event in turn."""
    for event in events:
        state = apply(state, event)
    return state
