"""inventory as the provider of message pacts: the orders <- inventory constants, and the
inventory's REAL path from a decided domain event to the wire.

The orders <- inventory pact holds the envelopes of ``StockReserved`` and
``ReservationRejected`` on ``inventory.events`` that orders' saga consumes; the
notifications <- inventory pact the ``LowStockDetected`` that staff's webhooks get. The
message body is the whole wire envelope (the kit's ``encode_envelope``): what the consumers
decode, with ``type``/``source`` exact and everything else matched by type.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from pact.types import Message

from stockflow.contracts.inventory_commands import EVENTS_TOPIC
from stockflow.inventory.domain.events import Event
from stockflow.inventory.service_layer.codec import encode_event
from stockflow.inventory.service_layer.relay import envelope_of
from stockflow.inventory.service_layer.store_values import StoredEvent
from stockflow_kit.messaging import encode_envelope

CONSUMER: Final = "orders"
PROVIDER: Final = "inventory"

ORDER_ID: Final = "order-pact-1"
SKU: Final = "SKU-1"
QTY: Final = 2

RESERVED: Final = "a StockReserved event"
REJECTED: Final = "a ReservationRejected event"
STATE_IN_STOCK: Final = f"{SKU} has 5 on hand"
STATE_SHORT: Final = f"{SKU} has 1 on hand"
ON_HAND: Final = {STATE_IN_STOCK: 5, STATE_SHORT: 1}

Edit = Callable[[dict[str, Any]], dict[str, Any]]


def unchanged(data: dict[str, Any]) -> dict[str, Any]:
    return data


def message(event: Event, *, sequence: int, edit: Edit = unchanged) -> Message:
    """What the pact verifier asks of a message handler for a decided *event*: the event
    codec's ``encode_event`` (what the event store keeps) -> ``StoredEvent`` -> the relay's
    ``envelope_of`` (what it publishes on ``inventory.events``) -> ``encode_envelope``, the
    ``data`` passed through *edit* first (the mutation tests)."""
    stored = StoredEvent(
        position=1,
        stream_id=SKU,
        sequence=sequence,
        event_id=uuid.uuid4(),
        type=type(event).__name__,
        data=encode_event(event),
        occurred_at=datetime.now(UTC),
    )
    envelope = envelope_of(stored)
    wire = encode_envelope(msgspec.structs.replace(envelope, data=edit(envelope.data)))
    return {
        "contents": wire,
        "metadata": {"topic": EVENTS_TOPIC},
        "content_type": "application/json",
    }
