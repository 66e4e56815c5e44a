"""Inventory domain errors: a small tree, each error carrying the data that explains it.

::

    InventoryError
    ├── InvalidQuantityError       a quantity or delta that makes no sense (<= 0, 0, no lines)
    ├── InsufficientStockError     an adjustment would leave less than nothing on hand
    ├── BelowReservedError         an adjustment would leave less on hand than is reserved
    └── ReservationConflictError   an order already holds a different quantity of a SKU

A reservation that cannot be met is *not* an error: it is a ``ReservationRejected`` event.
"""

from __future__ import annotations

__all__ = [
    "BelowReservedError",
    "InsufficientStockError",
    "InvalidQuantityError",
    "InventoryError",
    "ReservationConflictError",
]


class InventoryError(Exception):
    """Base of every error the inventory domain raises."""


class InvalidQuantityError(InventoryError):
    def __init__(self, field: str, value: int) -> None:
        super().__init__(f"invalid {field}: {value}")
        self.field = field
        self.value = value


class InsufficientStockError(InventoryError):
    def __init__(self, sku: str, *, on_hand: int, delta: int) -> None:
        super().__init__(f"{sku}: cannot apply {delta:+d}, only {on_hand} on hand")
        self.sku = sku
        self.on_hand = on_hand
        self.delta = delta


class BelowReservedError(InventoryError):
    def __init__(self, sku: str, *, on_hand: int, reserved: int, delta: int) -> None:
        super().__init__(
            f"{sku}: cannot apply {delta:+d} to {on_hand} on hand, {reserved} are reserved"
        )
        self.sku = sku
        self.on_hand = on_hand
        self.reserved = reserved
        self.delta = delta


class ReservationConflictError(InventoryError):
    """The same order id arrived again with different lines: a bug upstream, never ignored."""

    def __init__(self, order_id: str, sku: str, *, held: int, requested: int) -> None:
        super().__init__(f"order {order_id} holds {held} of {sku}, now asks for {requested}")
        self.order_id = order_id
        self.sku = sku
        self.held = held
        self.requested = requested
