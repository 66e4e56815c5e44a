"""Events the orders service publishes (topic :data:`ORDERS_EVENTS_TOPIC`) that others consume.

The inventory reacts to ``OrderPlaced`` (reserve), ``OrderCancelled`` (release) and
``OrderShipped`` (ship). Every event carries the order's lines so consumers can route by SKU.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["ORDERS_EVENTS_TOPIC", "OrderCancelled", "OrderLine", "OrderPlaced", "OrderShipped"]

ORDERS_EVENTS_TOPIC: Final = "orders.events"


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    qty: int


class OrderPlaced(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    customer_id: str
    lines: list[OrderLine]


class OrderCancelled(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    lines: list[OrderLine]
    reason: str = ""


class OrderShipped(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    lines: list[OrderLine]
