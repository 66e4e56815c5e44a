"""Published schemas of the orders service: its events (topic :data:`ORDERS_EVENTS_TOPIC`),
its HTTP DTOs, and the operation ids and OpenAPI links of its routes (orders' and edge's
documents both declare them).

Every event travels in the kit's envelope: ``type`` is the struct's name, ``source`` is
``"orders"``, ``subject`` the order id and ``sequence`` the order's version after the change
(1 for ``OrderPlaced``). Every event carries the order's lines, so consumers can route by SKU.

The inventory reacts to ``OrderPlaced`` (reserve all lines or none), ``OrderCancelled``
(release) and ``OrderShipped`` (ship). ``OrderConfirmed`` and ``OrderRejected`` tell the
customer (notifications). The saga's compensations (releasing what an order that timed out,
or that was rejected meanwhile, holds) are ``ReleaseReservation`` commands on the inventory's
command topic, addressed and deduplicated like every command.

The HTTP API is internal (edge fronts it): every route needs the service credential, and the
caller's identity travels in :data:`~stockflow.contracts.identity.USER_HEADER` /
``ROLE_HEADER``, which edge sets from the verified JWT (never from the client).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from stockflow.contracts.identity import ROLE_HEADER, USER_HEADER, Role
from stockflow.contracts.inventory import OrderId, Quantity, Sku

__all__ = [
    "MAX_ORDER_LINES",
    "ORDERS_EVENTS_TOPIC",
    "ORDER_LINKS",
    "ORDER_OPERATIONS",
    "ORDER_STATUSES",
    "PLACED_ORDER_LINKS",
    "REASON_CANCELLED",
    "REASON_INSUFFICIENT_STOCK",
    "REASON_TIMEOUT",
    "ROLE_HEADER",
    "USER_HEADER",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderLine",
    "OrderPlaced",
    "OrderRejected",
    "OrderShipped",
    "OrderStatus",
    "OrderView",
    "OrdersPage",
    "PlaceOrderRequest",
    "PlacedOrder",
    "RequestLine",
    "Role",
]

ORDERS_EVENTS_TOPIC: Final = "orders.events"
MAX_ORDER_LINES: Final = 100


REASON_INSUFFICIENT_STOCK: Final = "insufficient_stock"
REASON_TIMEOUT: Final = "timeout"
"""The saga timeout passed before the inventory answered."""
REASON_CANCELLED: Final = "cancelled"

OrderStatus = Literal["PENDING", "CONFIRMED", "REJECTED", "SHIPPED", "CANCELLED"]
ORDER_STATUSES: Final[tuple[OrderStatus, ...]] = (
    "PENDING",
    "CONFIRMED",
    "REJECTED",
    "SHIPPED",
    "CANCELLED",
)


ORDER_OPERATIONS: Final = {
    "place": "placeOrder",
    "get": "getOrder",
    "list": "listOrders",
    "cancel": "cancelOrder",
    "ship": "shipOrder",
}
"""The ``operationId`` of each orders route, the same in orders' and in edge's OpenAPI
document (the links below name them)."""


def _link(operation: str, description: str) -> dict[str, Any]:
    return {
        "operationId": ORDER_OPERATIONS[operation],
        "parameters": {"order_id": "$response.body#/id"},
        "description": description,
    }


PLACED_ORDER_LINKS: Final[dict[str, dict[str, Any]]] = {
    "GetOrder": _link("get", "Read the order just placed: its `id` is the `order_id`."),
    "CancelOrder": _link("cancel", "Cancel the order just placed."),
    "ShipOrder": _link("ship", "Ship the order just placed (staff)."),
}
"""OpenAPI links of the ``POST /orders`` answer (202): where the placed order's id goes next,
so a client (and schemathesis' stateful phase) can place an order, then read, cancel or ship
it."""

ORDER_LINKS: Final[dict[str, dict[str, Any]]] = {
    "CancelOrder": _link("cancel", "Cancel the order read."),
    "ShipOrder": _link("ship", "Ship the order read (staff)."),
}
"""OpenAPI links of an order's answer (``GET /orders/{order_id}``): cancel or ship it."""


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    qty: Quantity


class RequestLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One line of ``POST /orders`` (unknown fields are refused: a typo is not ignored)."""

    sku: Sku
    qty: Quantity


class OrderPlaced(msgspec.Struct, frozen=True, kw_only=True):
    order_id: OrderId
    customer_id: str
    lines: list[OrderLine]


class OrderConfirmed(msgspec.Struct, frozen=True, kw_only=True):
    """Every line is reserved for the order."""

    order_id: OrderId
    customer_id: str = ""
    lines: list[OrderLine] = msgspec.field(default_factory=list)


class OrderRejected(msgspec.Struct, frozen=True, kw_only=True):
    """The order holds nothing (or is being released): ``reason`` says why."""

    order_id: OrderId
    reason: str
    customer_id: str = ""
    lines: list[OrderLine] = msgspec.field(default_factory=list)


class OrderCancelled(msgspec.Struct, frozen=True, kw_only=True):
    order_id: OrderId
    lines: list[OrderLine]
    reason: str = ""
    customer_id: str = ""


class OrderShipped(msgspec.Struct, frozen=True, kw_only=True):
    order_id: OrderId
    lines: list[OrderLine]
    customer_id: str = ""


class PlaceOrderRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /orders`` body: what to buy. The customer is the caller."""

    lines: Annotated[list[RequestLine], msgspec.Meta(min_length=1, max_length=MAX_ORDER_LINES)]


class PlacedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /orders`` answer (202): the reservation happens asynchronously."""

    id: str
    status: OrderStatus


class OrderView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``GET /orders/{id}``; times are RFC 3339 UTC."""

    id: str
    customer_id: str
    status: OrderStatus
    lines: list[OrderLine]
    created_at: str
    updated_at: str
    reason: str | None = None


class OrdersPage(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /orders``: newest first; pass ``next`` (the id of the page's last order) as
    ``cursor`` for the following page; ``None`` on the last page."""

    orders: list[OrderView]
    next: str | None
