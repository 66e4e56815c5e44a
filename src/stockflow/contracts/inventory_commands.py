"""Commands the inventory accepts on the bus (topic :data:`COMMANDS_TOPIC`), and its topics.

Each command travels as an :class:`stockflow_kit.messaging.Envelope` whose ``type`` is the key
in :data:`COMMAND_TYPES`, ``source`` the sender, ``subject`` the SKU (or the order id for
order-level commands) and ``id`` the dedupe key: a command with an id the inventory already
processed changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from stockflow.contracts.inventory import Delta, OrderId, Quantity, Sku

__all__ = [
    "COMMANDS_TOPIC",
    "COMMAND_TYPES",
    "EVENTS_TOPIC",
    "AdjustStockCommand",
    "CommandLine",
    "ReceiveStockCommand",
    "ReleaseReservationCommand",
    "ReserveStockCommand",
    "ShipStockCommand",
]

COMMANDS_TOPIC: Final = "inventory.commands"
"""Where commands for the inventory are published."""

EVENTS_TOPIC: Final = "inventory.events"
"""Where the inventory publishes its events (envelope id = event id)."""


class CommandLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    qty: Quantity


class ReceiveStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    qty: Quantity
    reference: str = ""


class AdjustStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    sku: Sku
    delta: Delta
    reason: str = ""


class ReserveStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Reserve every line of the order, or none."""

    order_id: OrderId
    lines: Annotated[list[CommandLine], msgspec.Meta(min_length=1, max_length=100)]


class ReleaseReservationCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Give back what the order holds on ``skus``."""

    order_id: OrderId
    skus: Annotated[list[Sku], msgspec.Meta(min_length=1, max_length=100)]


class ShipStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Commit what the order holds on ``skus`` (the goods leave)."""

    order_id: OrderId
    skus: Annotated[list[Sku], msgspec.Meta(min_length=1, max_length=100)]


COMMAND_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "ReceiveStock": ReceiveStockCommand,
    "AdjustStock": AdjustStockCommand,
    "ReserveStock": ReserveStockCommand,
    "ReleaseReservation": ReleaseReservationCommand,
    "ShipStock": ShipStockCommand,
}
"""Envelope ``type`` -> payload schema."""
