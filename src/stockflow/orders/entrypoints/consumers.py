"""What the orders service consumes: the inventory's events, as facts about orders.

``StockReserved`` (one per SKU of an order) and ``ReservationRejected`` (one per order) are
facts for the saga; every other inventory event is acknowledged with no effect. A message whose
payload does not fit its schema can never be handled: :class:`MalformedInventoryEventError` (a
:class:`~stockflow_kit.messaging.PermanentMessageError`) has the kit dead-letter it at once.
Each consumed batch is applied in one unit of work (:meth:`OrderHandlers.on_inventory`) and
acked only after it commits.
"""

from __future__ import annotations

from typing import Final

import msgspec

from stockflow.contracts.inventory import ReservationRejected, StockReserved
from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.orders.domain.model import Rejected, Reserved
from stockflow.orders.service_layer.handlers import InventoryFact
from stockflow_kit.messaging import Envelope, PermanentMessageError, Source

__all__ = ["INVENTORY_DURABLE", "SOURCES", "MalformedInventoryEventError", "fact_of"]

INVENTORY_DURABLE: Final = "orders-inventory"


class MalformedInventoryEventError(PermanentMessageError):
    """An inventory event whose data does not fit its published schema."""


def fact_of(envelope: Envelope) -> InventoryFact | None:
    """The saga fact an inventory event carries, or ``None`` for the ones orders ignores."""
    try:
        match envelope.type:
            case "StockReserved":
                reserved = msgspec.convert(envelope.data, StockReserved)
                return InventoryFact(reserved.order_id, Reserved(reserved.sku, reserved.qty))
            case "ReservationRejected":
                rejected = msgspec.convert(envelope.data, ReservationRejected)
                return InventoryFact(rejected.order_id, Rejected(rejected.reason))
    except msgspec.ValidationError as error:
        raise MalformedInventoryEventError(f"{envelope.type}: {error}") from None
    return None


SOURCES: Final[tuple[Source[InventoryFact], ...]] = (
    Source(EVENTS_TOPIC, INVENTORY_DURABLE, fact_of),
)
