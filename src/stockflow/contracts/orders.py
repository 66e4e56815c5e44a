"""Events the orders service publishes (topic :data:`ORDERS_EVENTS_TOPIC`) that others consume.

The inventory reacts to ``OrderPlaced`` (reserve), ``OrderCancelled`` (release) and
``OrderShipped`` (ship). Every event carries the order's lines so consumers can route by SKU.
"""

from __future__ import annotations

from typing import Final

import msgspec

from stockflow.contracts.inventory import OrderId, Quantity, Sku

__all__ = ["ORDERS_EVENTS_TOPIC", "OrderCancelled", "OrderLine", "OrderPlaced", "OrderShipped"]

ORDERS_EVENTS_TOPIC: Final = "orders.events"


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    qty: Quantity


class OrderPlaced(msgspec.Struct, frozen=True, kw_only=True):
    order_id: OrderId
    customer_id: str
    lines: list[OrderLine]


class OrderCancelled(msgspec.Struct, frozen=True, kw_only=True):
    order_id: OrderId
    lines: list[OrderLine]
    reason: str = ""


class OrderShipped(msgspec.Struct, frozen=True, kw_only=True):
    order_id: OrderId
    lines: list[OrderLine]
