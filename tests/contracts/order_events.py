"""orders as the provider of message pacts: its REAL path from a domain change to the wire.

Each story is the order's lifecycle up to the change the provider state names, told with
orders' domain (``place``, ``apply_fact``, ``cancel``, ``ship``, ``time_out``); the change goes
through ``publish_change`` (the envelopes orders hands its outbox, on ``orders.events`` and,
for a compensation, ``inventory.commands``) and the kit's ``encode_envelope``. The pacts whose
provider is orders (inventory <- orders, notifications <- orders) and the edge -> notifications
state that needs alice's real ``OrderConfirmed`` all produce their messages here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast

import msgspec
from pact.types import Message
from tests.contracts.providers import Outbox

from stockflow.orders.domain.model import (
    INSUFFICIENT_STOCK,
    Change,
    Rejected,
    Reserved,
    apply_fact,
    cancel,
    place,
    ship,
    time_out,
)
from stockflow.orders.service_layer.messages import publish_change
from stockflow.orders.service_layer.ports import UnitOfWork
from stockflow_kit.messaging import Envelope, encode_envelope

__all__ = ["CUSTOMER", "QTY", "SKU", "STORIES", "Edit", "envelope_of", "message", "unchanged"]

CUSTOMER: Final = "alice"
SKU: Final = "SKU-1"
QTY: Final = 2
TIMEOUT: Final = 30.0

Edit = Callable[[dict[str, Any]], dict[str, Any]]
Story = Callable[[str, float], Change]


def unchanged(data: dict[str, Any]) -> dict[str, Any]:
    return data


def placed(order_id: str, now: float) -> Change:
    return place(order_id, CUSTOMER, ((SKU, QTY),), now=now, timeout=TIMEOUT)


def confirmed(order_id: str, now: float) -> Change:
    return apply_fact(placed(order_id, now).order, Reserved(SKU, QTY), now=now)


def rejected(order_id: str, now: float) -> Change:
    return apply_fact(placed(order_id, now).order, Rejected(INSUFFICIENT_STOCK), now=now)


def cancelled(order_id: str, now: float) -> Change:
    return cancel(confirmed(order_id, now).order, now=now)


def shipped(order_id: str, now: float) -> Change:
    return ship(confirmed(order_id, now).order, now=now)


def timed_out(order_id: str, now: float) -> Change:
    """The saga's deadline passes with nothing reserved: rejected, and every SKU released."""
    return time_out(placed(order_id, now).order, now=now + TIMEOUT)


STORIES: Final[dict[str, Story]] = {
    "OrderPlaced": placed,
    "OrderConfirmed": confirmed,
    "OrderRejected": rejected,
    "OrderCancelled": cancelled,
    "OrderShipped": shipped,
    "ReleaseReservation": timed_out,
}
"""Message type -> the story whose last change publishes it."""


def envelope_of(message_type: str, order_id: str) -> tuple[str, Envelope]:
    """The topic and the envelope of *message_type* that orders publishes for its story."""
    change = STORIES[message_type](order_id, time.time())
    outbox = Outbox()
    publish_change(cast(UnitOfWork, outbox), change, correlation_id="pact")
    ((topic, envelope),) = [
        (topic, envelope)
        for topic, envelopes in outbox.published
        for envelope in envelopes
        if envelope.type == message_type
    ]
    return topic, envelope


def message(message_type: str, order_id: str, edit: Edit = unchanged) -> Message:
    """What the pact verifier asks of a message handler: the wire bytes of *message_type*,
    its ``data`` passed through *edit* first (the mutation tests), and the topic."""
    topic, envelope = envelope_of(message_type, order_id)
    edited = msgspec.structs.replace(envelope, data=edit(dict(envelope.data)))
    return Message(
        contents=encode_envelope(edited), metadata={"topic": topic}, content_type="application/json"
    )
