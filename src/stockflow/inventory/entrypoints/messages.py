"""Bus messages -> domain commands: the inventory's commands and the orders' events.

Payloads are validated by msgspec against the published schemas
(``stockflow.contracts.inventory_commands`` and ``stockflow.contracts.orders``), then turned
into domain commands. Anything that does not fit raises :class:`MalformedMessageError`.
"""

from __future__ import annotations

from typing import Final

import msgspec

from stockflow.contracts.inventory_commands import (
    AdjustStockCommand,
    ReceiveStockCommand,
    ReleaseReservationCommand,
    ReserveStockCommand,
    ShipStockCommand,
)
from stockflow.contracts.orders import OrderCancelled, OrderPlaced, OrderShipped
from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow_kit.messaging import Envelope, PermanentMessageError

__all__ = [
    "IGNORED_ORDER_EVENTS",
    "MalformedMessageError",
    "command_of",
    "command_of_order_event",
    "envelope_of_command",
]

IGNORED_ORDER_EVENTS: Final = frozenset({"OrderConfirmed", "OrderRejected"})
"""Order events the inventory has nothing to do for (acked, no effect)."""


class MalformedMessageError(PermanentMessageError):
    """The envelope's type is unknown or its data does not fit the type's schema."""


def command_of(envelope: Envelope) -> Command:
    """The domain command carried by an envelope of ``inventory.commands``."""
    data = envelope.data
    try:
        match envelope.type:
            case "ReceiveStock":
                receipt = msgspec.convert(data, ReceiveStockCommand)
                return ReceiveStock(sku=receipt.sku, qty=receipt.qty, reference=receipt.reference)
            case "AdjustStock":
                adjustment = msgspec.convert(data, AdjustStockCommand)
                return AdjustStock(
                    sku=adjustment.sku, delta=adjustment.delta, reason=adjustment.reason
                )
            case "ReserveStock":
                reserve = msgspec.convert(data, ReserveStockCommand)
                lines = tuple((line.sku, line.qty) for line in reserve.lines)
                return ReserveStock(order_id=reserve.order_id, lines=lines)
            case "ReleaseReservation":
                release = msgspec.convert(data, ReleaseReservationCommand)
                return ReleaseReservation(order_id=release.order_id, skus=tuple(release.skus))
            case "ShipStock":
                ship = msgspec.convert(data, ShipStockCommand)
                return ShipStock(order_id=ship.order_id, skus=tuple(ship.skus))
    except msgspec.ValidationError as error:
        raise MalformedMessageError(f"{envelope.type}: {error}") from None
    raise MalformedMessageError(f"unknown command type {envelope.type!r}")


def command_of_order_event(envelope: Envelope) -> Command | None:
    """The command an order event asks of the inventory; ``None`` for ones it ignores."""
    data = envelope.data
    try:
        match envelope.type:
            case "OrderPlaced":
                placed = msgspec.convert(data, OrderPlaced)
                lines = tuple((line.sku, line.qty) for line in placed.lines)
                return ReserveStock(order_id=placed.order_id, lines=lines)
            case "OrderCancelled":
                cancelled = msgspec.convert(data, OrderCancelled)
                skus = tuple(dict.fromkeys(line.sku for line in cancelled.lines))
                return ReleaseReservation(order_id=cancelled.order_id, skus=skus)
            case "OrderShipped":
                shipped = msgspec.convert(data, OrderShipped)
                skus = tuple(dict.fromkeys(line.sku for line in shipped.lines))
                return ShipStock(order_id=shipped.order_id, skus=skus)
            case kind if kind in IGNORED_ORDER_EVENTS:
                return None
    except msgspec.ValidationError as error:
        raise MalformedMessageError(f"{envelope.type}: {error}") from None
    raise MalformedMessageError(f"unknown order event type {envelope.type!r}")


def envelope_of_command(
    command: Command, *, message_id: str, correlation_id: str | None, source: str
) -> Envelope:
    """``command`` as an ``inventory.commands`` envelope (the inverse of :func:`command_of`):
    how the router of the dynamic mode (ADR 0010) hands a command to its partition."""
    data: dict[str, object]
    match command:
        case ReceiveStock(sku=sku, qty=qty, reference=reference):
            data = {"sku": sku, "qty": qty, "reference": reference}
        case AdjustStock(sku=sku, delta=delta, reason=reason):
            data = {"sku": sku, "delta": delta, "reason": reason}
        case ReserveStock(order_id=order_id, lines=lines):
            data = {"order_id": order_id, "lines": [{"sku": s, "qty": q} for s, q in lines]}
        case (
            ReleaseReservation(order_id=order_id, skus=skus)
            | ShipStock(order_id=order_id, skus=skus)
        ):
            data = {"order_id": order_id, "skus": list(skus)}
        case _:
            raise TypeError(f"not an inventory command: {command!r}")
    return Envelope.new(
        type(command).__name__,
        data,
        source=source,
        subject=command.skus[0] if command.skus else "",
        id=message_id,
        correlation_id=correlation_id,
        causation_id=message_id,
    )
