"""The notifications use cases: consume events, and manage webhook subscriptions.

A consumed batch is applied in ONE unit of work: the inbox records the message ids and keeps
the new ones, each new event makes its in-app notification (for the order's owner) and one
queued delivery per live webhook subscribed to its type, then everything commits together.
Only then is the batch acked, and the dispatcher woken to send the deliveries. A redelivered
or duplicated message is dropped by the inbox; and were it not, the notification's id (the
event id) and the delivery's id (webhook + event) would still refuse a second row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from prometheus_client import CollectorRegistry

from stockflow.contracts.notifications import WebhookPayload
from stockflow.notifications.domain.model import (
    Delivery,
    Notification,
    Webhook,
    delivery_id,
    new_secret,
    notification_for,
)
from stockflow.notifications.domain.targets import TargetPolicy
from stockflow.notifications.service_layer.ports import UnitOfWork
from stockflow.notifications.service_layer.telemetry import NotificationsMetrics
from stockflow_kit.messaging import Delivery as BusDelivery

__all__ = [
    "Caller",
    "EventItem",
    "NotAllowedError",
    "NotificationHandlers",
    "UnknownWebhookError",
]

_log = structlog.get_logger("stockflow.notifications")


class UnknownWebhookError(Exception):
    """No such webhook (or it was deleted)."""


class NotAllowedError(Exception):
    """The caller's role may not do this (webhooks are for staff)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, as edge verified it: a user id (``None`` for staff tools) and a role."""

    user_id: str | None
    role: str = "customer"

    @property
    def staff(self) -> bool:
        return self.role == "staff"

    def require_staff(self) -> None:
        if not self.staff:
            raise NotAllowedError("only staff manage webhooks")


@dataclass(frozen=True, slots=True)
class EventItem:
    """A consumed event, as the use cases need it."""

    event_id: str
    type: str
    occurred_at: str
    """RFC 3339 UTC (the webhook payload's ``timestamp``)."""
    occurred: float
    """The same in Unix seconds: the notification's ``created_at`` (pages follow events)."""
    data: dict[str, Any] = field(default_factory=dict)
    customer_id: str = ""
    order_id: str = ""
    reason: str = ""
    correlation_id: str | None = None
    """The envelope's: kept on the notification and sent in the webhook payload."""


class NotificationHandlers:
    """The use cases over a unit-of-work factory; see the module docstring.

    Args:
        uow: Makes a unit of work.
        policy: The SSRF rules a webhook URL must pass.
        queued: Called after a commit that queued deliveries (wakes the dispatcher).
    """

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        policy: TargetPolicy,
        queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.uow, self.policy, self.queued, self.clock = uow, policy, queued, clock
        self.metrics = NotificationsMetrics(registry)

    async def on_events(self, items: Sequence[tuple[BusDelivery, EventItem]]) -> None:
        """Apply a consumed batch once each (inbox), in one transaction."""
        now = self.clock()
        async with self.uow() as uow:
            fresh = {id(d) for d in await uow.new_messages([d for d, _ in items])}
            events = [item for d, item in items if id(d) in fresh]
            webhooks = await uow.webhooks.live() if events else []
            notifications: list[Notification] = []
            deliveries: list[Delivery] = []
            for event in events:
                note = notification_for(
                    event_id=event.event_id,
                    event_type=event.type,
                    customer_id=event.customer_id,
                    order_id=event.order_id,
                    reason=event.reason,
                    at=event.occurred,
                    correlation_id=event.correlation_id,
                )
                if note is not None:
                    notifications.append(note)
                body: str | None = None
                for webhook in webhooks:
                    if not webhook.wants(event.type):
                        continue
                    if body is None:
                        payload = WebhookPayload(
                            type=event.type,
                            timestamp=event.occurred_at,
                            data=event.data,
                            correlation_id=event.correlation_id,
                        )
                        body = msgspec.json.encode(payload).decode()
                    deliveries.append(
                        Delivery(
                            id=delivery_id(webhook.id, event.event_id),
                            webhook_id=webhook.id,
                            event_id=event.event_id,
                            event_type=event.type,
                            body=body,
                            status="pending",
                            attempts=0,
                            next_attempt_at=now,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            await uow.notifications.add_many(notifications)
            await uow.deliveries.add_many(deliveries)
            await uow.commit()
        for note in notifications:
            self.metrics.notifications.labels(note.type).inc()
        for delivery in deliveries:
            self.metrics.queued.labels(delivery.event_type).inc()
        if deliveries:
            self.queued()

    async def subscribe(self, caller: Caller, url: str, events: Sequence[str]) -> Webhook:
        """A new webhook (its secret in clear, shown once).

        Raises:
            NotAllowedError: the caller is not staff.
            TargetRefusedError: the URL breaks the SSRF rules.
        """
        caller.require_staff()
        self.policy.check_url(url)
        webhook = Webhook(
            id=f"wh_{uuid.uuid4().hex}",
            url=url,
            events=tuple(dict.fromkeys(events)),
            secret=new_secret(),
            created_at=self.clock(),
        )
        async with self.uow() as uow:
            await uow.webhooks.add(webhook)
            await uow.commit()
        _log.info("notifications.webhook_subscribed", webhook=webhook.id, events=webhook.events)
        return webhook

    async def unsubscribe(self, caller: Caller, webhook_id: str) -> None:
        """Delete a webhook; its deliveries not yet sent are dead.

        Raises:
            NotAllowedError: the caller is not staff.
            UnknownWebhookError: no such webhook.
        """
        caller.require_staff()
        async with self.uow() as uow:
            if not await uow.webhooks.delete(webhook_id, now=self.clock()):
                raise UnknownWebhookError(f"no webhook {webhook_id!r}")
            await uow.commit()
        _log.info("notifications.webhook_deleted", webhook=webhook_id)
