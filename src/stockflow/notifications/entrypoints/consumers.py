"""What the notifications service consumes: the orders' events and the inventory's
``LowStockDetected`` (every other inventory event is acked with no effect).

A message whose payload does not fit its published schema can never be handled:
:class:`MalformedEventError` (a :class:`~stockflow_kit.messaging.PermanentMessageError`) has
the kit dead-letter it at once (with its log line and metric). Each consumed batch is applied
in one unit of work (:meth:`NotificationHandlers.on_events`) and acked after it commits.
"""

from __future__ import annotations

from datetime import UTC
from typing import Final

import msgspec

from stockflow.contracts.inventory import LowStockDetected
from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.contracts.orders import (
    ORDERS_EVENTS_TOPIC,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from stockflow.notifications.service_layer.handlers import EventItem
from stockflow_kit.messaging import Envelope, PermanentMessageError, Source

__all__ = [
    "INVENTORY_DURABLE",
    "ORDERS_DURABLE",
    "SOURCES",
    "MalformedEventError",
    "inventory_item",
    "order_item",
]

ORDERS_DURABLE: Final = "notifications-orders"
INVENTORY_DURABLE: Final = "notifications-inventory"

_ORDER_EVENTS: Final[dict[str, type[msgspec.Struct]]] = {
    "OrderPlaced": OrderPlaced,
    "OrderConfirmed": OrderConfirmed,
    "OrderRejected": OrderRejected,
    "OrderCancelled": OrderCancelled,
    "OrderShipped": OrderShipped,
}


class MalformedEventError(PermanentMessageError):
    """An event whose type is unknown on its topic or whose data does not fit its schema."""


def _timestamp(envelope: Envelope) -> str:
    at = envelope.occurred_at.astimezone(UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order_item(envelope: Envelope) -> EventItem:
    """The event of an ``orders.events`` message."""
    schema = _ORDER_EVENTS.get(envelope.type)
    if schema is None:
        raise MalformedEventError(f"unknown orders event type {envelope.type!r}")
    try:
        event = msgspec.convert(envelope.data, schema)
    except msgspec.ValidationError as error:
        raise MalformedEventError(f"{envelope.type}: {error}") from None
    return EventItem(
        event_id=envelope.id,
        type=envelope.type,
        occurred_at=_timestamp(envelope),
        occurred=envelope.occurred_at.timestamp(),
        data=dict(envelope.data),
        customer_id=getattr(event, "customer_id", ""),
        order_id=getattr(event, "order_id", ""),
        reason=getattr(event, "reason", ""),
        correlation_id=envelope.correlation_id,
    )


def inventory_item(envelope: Envelope) -> EventItem | None:
    """The ``LowStockDetected`` of an inventory message; ``None`` for the other events."""
    if envelope.type != "LowStockDetected":
        return None
    try:
        msgspec.convert(envelope.data, LowStockDetected)
    except msgspec.ValidationError as error:
        raise MalformedEventError(f"{envelope.type}: {error}") from None
    return EventItem(
        event_id=envelope.id,
        type=envelope.type,
        occurred_at=_timestamp(envelope),
        occurred=envelope.occurred_at.timestamp(),
        data=dict(envelope.data),
        correlation_id=envelope.correlation_id,
    )


SOURCES: Final[tuple[Source[EventItem], ...]] = (
    Source(ORDERS_EVENTS_TOPIC, ORDERS_DURABLE, order_item),
    Source(EVENTS_TOPIC, INVENTORY_DURABLE, inventory_item),
)
