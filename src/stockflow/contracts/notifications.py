"""Published schemas of the notifications service: its HTTP DTOs and webhook deliveries.

Notifications consumes ``orders.events`` (and the inventory's ``LowStockDetected``) and keeps
in-app notifications per customer; staff subscribe webhooks whose deliveries follow the
Standard Webhooks convention (headers ``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, the secret
``whsec_<base64>`` returned once at subscription).

HTTP (internal; edge fronts it; service credential + identity headers on every route):

- ``GET /notifications?cursor=&limit=``: the caller's :class:`NotificationsPage`, newest first;
- ``POST /webhooks`` (staff): :class:`WebhookRequest` -> 201 :class:`WebhookCreated`;
- ``GET /webhooks`` (staff): ``{"webhooks": [WebhookView]}``;
- ``DELETE /webhooks/{id}`` (staff): 204;
- ``GET /webhooks/{id}/deliveries`` (staff): :class:`DeliveriesPage`, the delivery log.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

__all__ = [
    "WEBHOOK_EVENT_TYPES",
    "DeliveriesPage",
    "DeliveryAttemptView",
    "DeliveryView",
    "NotificationView",
    "NotificationsPage",
    "WebhookCreated",
    "WebhookPayload",
    "WebhookRequest",
    "WebhookView",
]

WEBHOOK_EVENT_TYPES: Final = (
    "OrderPlaced",
    "OrderConfirmed",
    "OrderRejected",
    "OrderCancelled",
    "OrderShipped",
    "LowStockDetected",
)
"""Event types a webhook may subscribe to."""

EventType = Literal[
    "OrderPlaced",
    "OrderConfirmed",
    "OrderRejected",
    "OrderCancelled",
    "OrderShipped",
    "LowStockDetected",
]


class NotificationView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    user_id: str
    type: str
    """The event that caused it, e.g. ``OrderConfirmed``."""
    message: str
    created_at: str
    order_id: str | None = None
    correlation_id: str | None = None
    """The ``X-Correlation-ID`` of the request that caused it (absent when unknown)."""


class NotificationsPage(msgspec.Struct, frozen=True, kw_only=True):
    notifications: list[NotificationView]
    next: str | None


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^https?://")]
    events: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=6)]


class WebhookView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    events: list[str]
    created_at: str


class WebhookCreated(msgspec.Struct, frozen=True, kw_only=True):
    """The subscription, with its signing secret: shown this once."""

    id: str
    url: str
    events: list[str]
    created_at: str
    secret: str


class DeliveryAttemptView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One attempt of a delivery, as the delivery log keeps it."""

    attempt: int
    """1 for the first try."""
    at: str
    duration_ms: float
    status: int | None = None
    """The endpoint's HTTP status; absent when it gave no answer (see ``error``)."""
    error: str | None = None
    next_attempt_at: str | None = None
    """When the next attempt is due; absent once delivered or dead."""


class DeliveryView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    """The ``webhook-id``: the same on every retry of one delivery (receivers dedupe on it)."""
    event_type: str
    status: Literal["pending", "delivered", "failed", "dead"]
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    created_at: str
    updated_at: str
    next_attempt_at: str | None = None
    """When the next attempt is due (``pending`` and ``failed`` only)."""
    attempt_log: list[DeliveryAttemptView] = msgspec.field(default_factory=list)
    """Every attempt so far, oldest first."""


class DeliveriesPage(msgspec.Struct, frozen=True, kw_only=True):
    deliveries: list[DeliveryView]
    next: str | None


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of a delivery (Standard Webhooks' ``type``/``timestamp``/``data``)."""

    type: str
    timestamp: str
    data: dict[str, object]
    correlation_id: str | None = None
    """The ``X-Correlation-ID`` of the request that caused the event (absent when unknown)."""
