"""The notifications service's metrics, created per registry (one registry per service).

Labels stay bounded: event types are the six published ones, outcomes a handful, and
per-endpoint series are labelled with the webhook's id (one per subscription), never its URL.
The breaker of each endpoint exports the kit's ``circuit_breaker_state{name="webhook:<id>"}``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stockflow_kit.observability import counter, gauge, histogram

__all__ = ["NotificationsMetrics"]

_ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class NotificationsMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.notifications = counter(
            "notifications_created",
            "In-app notifications created, by event type.",
            ["type"],
            registry=registry,
        )
        self.queued = counter(
            "notifications_webhook_deliveries_queued",
            "Webhook deliveries queued, by event type.",
            ["type"],
            registry=registry,
        )
        self.deliveries = counter(
            "notifications_webhook_deliveries",
            "Webhook deliveries settled, by outcome (delivered or dead).",
            ["outcome"],
            registry=registry,
        )
        self.attempts = counter(
            "notifications_webhook_attempts",
            "Delivery attempts, by outcome (success, failure, refused).",
            ["outcome"],
            registry=registry,
        )
        self.dead = counter(
            "notifications_webhook_dead_deliveries",
            "Deliveries that used up their attempts, by webhook id.",
            ["webhook"],
            registry=registry,
        )
        self.postponed = counter(
            "notifications_webhook_postponed",
            "Due deliveries put off because their endpoint's breaker was open.",
            registry=registry,
        )
        self.attempt_seconds = histogram(
            "notifications_webhook_attempt_duration_seconds",
            "Duration of one delivery attempt (resolve, connect, send, answer).",
            registry=registry,
            buckets=_ATTEMPT_BUCKETS,
        )
        self.backlog = gauge(
            "notifications_webhook_backlog",
            "Deliveries not yet delivered or dead.",
            registry=registry,
        )
