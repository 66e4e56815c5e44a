"""A :class:`~stockflow.orders.domain.model.Change` as bus messages: the order's events on
``orders.events`` and its compensations as ``ReleaseReservation`` commands for the inventory.

The payloads are the published schemas (:mod:`stockflow.contracts.orders`,
:mod:`stockflow.contracts.inventory_commands`). Each message carries the correlation id of what
caused it (the request, or the consumed event) and, for a consumed event, its id as causation.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC, ReleaseReservationCommand
from stockflow.contracts.orders import (
    ORDERS_EVENTS_TOPIC,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderRejected,
    OrderShipped,
)
from stockflow.orders.domain.model import (
    Cancelled,
    Change,
    Confirmed,
    DomainEvent,
    Order,
    Placed,
    RejectedOrder,
    Shipped,
)
from stockflow.orders.service_layer.ports import UnitOfWork
from stockflow_kit.messaging import Envelope

__all__ = ["SOURCE", "publish_change"]

SOURCE = "orders"


def _payload(order: Order, event: DomainEvent) -> msgspec.Struct:
    lines = [OrderLine(sku=sku, qty=qty) for sku, qty in order.lines]
    match event:
        case Placed():
            return OrderPlaced(order_id=order.id, customer_id=order.customer_id, lines=lines)
        case Confirmed():
            return OrderConfirmed(order_id=order.id, customer_id=order.customer_id, lines=lines)
        case RejectedOrder(reason=reason):
            return OrderRejected(
                order_id=order.id, reason=reason, customer_id=order.customer_id, lines=lines
            )
        case Cancelled():
            return OrderCancelled(order_id=order.id, customer_id=order.customer_id, lines=lines)
        case Shipped():
            return OrderShipped(order_id=order.id, customer_id=order.customer_id, lines=lines)
    raise TypeError(f"not an order event: {event!r}")


def publish_change(
    uow: UnitOfWork,
    change: Change,
    *,
    correlation_id: str | None,
    causation_id: str | None = None,
    trace: Mapping[str, str] | None = None,
) -> None:
    """Hand the change's events and releases to the unit of work's outbox (under *trace*, the
    trace context of the request that caused it, when the commit runs in another task)."""
    order = change.order
    events: list[Envelope] = []
    for event in change.events:
        payload = _payload(order, event)
        events.append(
            Envelope.new(
                type(payload).__name__,
                payload,
                source=SOURCE,
                subject=order.id,
                sequence=order.version,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
        )
    uow.publish(ORDERS_EVENTS_TOPIC, events, trace=trace)
    if change.releases:
        release = ReleaseReservationCommand(order_id=order.id, skus=list(change.releases))
        uow.publish(
            COMMANDS_TOPIC,
            [
                Envelope.new(
                    "ReleaseReservation",
                    release,
                    source=SOURCE,
                    subject=order.id,
                    correlation_id=correlation_id,
                    causation_id=causation_id,
                )
            ],
            trace=trace,
        )
