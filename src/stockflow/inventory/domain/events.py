"""Private domain events (past tense). Translated to ``stockflow.contracts.inventory`` at the
boundary, so these may be refactored freely.

Every event names the SKU stream it belongs to in ``sku``. msgspec Structs with ``gc=False``:
cheap to build and never tracked by the cycle collector (they hold only str, int and tuples).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "Event",
    "LowStockDetected",
    "ReservationRejected",
    "ReservationReleased",
    "Shortfall",
    "StockAdjusted",
    "StockReceived",
    "StockReserved",
    "StockShipped",
]


class StockReceived(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    qty: int
    reference: str = ""


class StockAdjusted(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    delta: int
    reason: str = ""


class StockReserved(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    order_id: str
    qty: int


class Shortfall(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An order line asking for more than is available."""

    sku: str
    requested: int
    available: int


class ReservationRejected(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Recorded in the stream of the first failing line's SKU; changes no quantity."""

    sku: str
    order_id: str
    reason: str
    lines: tuple[Shortfall, ...]


class ReservationReleased(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    order_id: str
    qty: int


class StockShipped(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    order_id: str
    qty: int


class LowStockDetected(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    sku: str
    available: int
    threshold: int


Event = (
    StockReceived
    | StockAdjusted
    | StockReserved
    | ReservationRejected
    | ReservationReleased
    | StockShipped
    | LowStockDetected
)
