"""Commands the inventory accepts on the bus (topic :data:`COMMANDS_TOPIC`), and its topics.

Each command travels as an :class:`stockflow_kit.messaging.Envelope` whose ``type`` is the key
in :data:`COMMAND_TYPES`, ``source`` the sender, ``subject`` the SKU (or the order id for
order-level commands) and ``id`` the dedupe key: a command with an id the inventory already
processed changes nothing.
"""

from __future__ import annotations

from typing import Final

import msgspec

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
    sku: str
    qty: int


class ReceiveStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    qty: int
    reference: str = ""


class AdjustStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    delta: int
    reason: str = ""


class ReserveStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Reserve every line of the order, or none."""

    order_id: str
    lines: list[CommandLine]


class ReleaseReservationCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Give back what the order holds on ``skus``."""

    order_id: str
    skus: list[str]


class ShipStockCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Commit what the order holds on ``skus`` (the goods leave)."""

    order_id: str
    skus: list[str]


COMMAND_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "ReceiveStock": ReceiveStockCommand,
    "AdjustStock": AdjustStockCommand,
    "ReserveStock": ReserveStockCommand,
    "ReleaseReservation": ReleaseReservationCommand,
    "ShipStock": ShipStockCommand,
}
"""Envelope ``type`` -> payload schema."""
