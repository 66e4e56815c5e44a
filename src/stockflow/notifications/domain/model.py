"""Notifications, webhook subscriptions and deliveries: values and the decisions about them.

Pure: no I/O, no clock (times are passed in as Unix seconds), no driver library.

- An order event becomes one in-app :class:`Notification` for the order's owner (the event's
  ``customer_id``); an event without an owner (an old producer) notifies nobody in-app.
  ``LowStockDetected`` is for staff: it goes to webhooks only, never to a customer's list.
- Every event goes, as one :class:`Delivery`, to each live :class:`Webhook` subscribed to its
  type. A delivery's id is the Standard Webhooks ``webhook-id``: derived from the webhook and
  the event, so the same event can never queue two deliveries to one webhook, and the same on
  every retry, so receivers can dedupe.
- A delivery is ``pending`` until its first attempt, ``failed`` (to be retried at
  ``next_attempt_at``) after a failed one, ``delivered`` after a 2xx, and ``dead`` after
  ``max_attempts`` failed attempts (or when its webhook is deleted).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = [
    "DELIVERY_NAMESPACE",
    "STAFF_ONLY_EVENTS",
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "Notification",
    "Webhook",
    "after_attempt",
    "delivery_id",
    "message_for",
    "new_secret",
    "notification_for",
]

DeliveryStatus = Literal["pending", "delivered", "failed", "dead"]

DELIVERY_NAMESPACE: Final = uuid.UUID("6f1c7a0e-4d3b-5a55-9d7e-2b1f0c8e9a41")
"""The UUIDv5 namespace of delivery ids."""

STAFF_ONLY_EVENTS: Final = frozenset({"LowStockDetected"})
"""Events that reach webhooks only (no customer owns them)."""

_REASONS: Final = {
    "insufficient_stock": "not enough stock",
    "timeout": "it could not be reserved in time",
    "cancelled": "it was cancelled",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One in-app notification of one user."""

    id: str
    user_id: str
    type: str
    message: str
    created_at: float
    order_id: str | None = None
    correlation_id: str | None = None
    """The correlation id of the request that caused the event (from its envelope)."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """A staff subscription: where to send which event types, and the signing secret."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: float
    deleted_at: float | None = None

    def wants(self, event_type: str) -> bool:
        return self.deleted_at is None and event_type in self.events


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to one webhook, with where its attempts stand."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    body: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    created_at: float
    updated_at: float
    last_status: int | None = None
    last_error: str | None = None

    @property
    def settled(self) -> bool:
        return self.status in ("delivered", "dead")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a delivery, as the delivery log keeps it."""

    delivery_id: str
    number: int
    at: float
    duration: float
    status: int | None
    error: str | None
    next_attempt_at: float | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None


def delivery_id(webhook_id: str, event_id: str) -> str:
    """The ``webhook-id`` of *event_id* sent to *webhook_id* (``msg_<uuid5>``)."""
    return f"msg_{uuid.uuid5(DELIVERY_NAMESPACE, f'{webhook_id}/{event_id}').hex}"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def message_for(event_type: str, order_id: str, reason: str = "") -> str | None:
    """The text a customer reads about an order event; ``None`` for other events."""
    match event_type:
        case "OrderPlaced":
            return f"We received your order {order_id}."
        case "OrderConfirmed":
            return f"Your order {order_id} is confirmed."
        case "OrderRejected":
            why = _REASONS.get(reason, reason.replace("_", " ") or "no reason given")
            return f"Your order {order_id} was rejected: {why}."
        case "OrderCancelled":
            return f"Your order {order_id} was cancelled."
        case "OrderShipped":
            return f"Your order {order_id} has shipped."
    return None


def notification_for(
    *,
    event_id: str,
    event_type: str,
    customer_id: str,
    order_id: str,
    reason: str = "",
    at: float,
    correlation_id: str | None = None,
) -> Notification | None:
    """The in-app notification an order event makes for its owner, if any, dated *at* (when
    the event happened, so a user's list follows the order's story).

    Its id is the event's id, so one event can never notify twice."""
    if event_type in STAFF_ONLY_EVENTS or not customer_id:
        return None
    message = message_for(event_type, order_id, reason)
    if message is None:
        return None
    return Notification(
        id=event_id,
        user_id=customer_id,
        type=event_type,
        message=message,
        created_at=at,
        order_id=order_id,
        correlation_id=correlation_id,
    )


def after_attempt(
    delivery: Delivery,
    attempt_status: int | None,
    error: str | None,
    *,
    now: float,
    max_attempts: int,
    retry_in: float,
) -> Delivery:
    """The delivery after one more attempt that answered *attempt_status* (``None``: no answer)
    or failed with *error*: delivered on a 2xx, else retried in *retry_in* seconds, or dead
    once *max_attempts* attempts failed."""
    attempts = delivery.attempts + 1
    ok = error is None and attempt_status is not None and 200 <= attempt_status < 300
    if ok:
        status: DeliveryStatus = "delivered"
        next_at = None
    elif attempts >= max_attempts:
        status, next_at = "dead", None
    else:
        status, next_at = "failed", now + max(retry_in, 0.0)
    return replace(
        delivery,
        status=status,
        attempts=attempts,
        next_attempt_at=next_at,
        updated_at=now,
        last_status=attempt_status,
        last_error=error,
    )
