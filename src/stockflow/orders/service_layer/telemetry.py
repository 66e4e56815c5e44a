"""The orders service's metrics, created per registry (one registry per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stockflow.orders.domain.model import Order
from stockflow_kit.observability import counter, gauge, histogram

__all__ = ["OrdersMetrics"]

_SETTLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class OrdersMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.placed = counter("orders_placed", "Orders accepted (PENDING).", registry=registry)
        self.transitions = counter(
            "orders_transitions",
            "Order status changes, by the status reached (and reason for REJECTED).",
            ["status", "reason"],
            registry=registry,
        )
        self.settle_seconds = histogram(
            "orders_settle_duration_seconds",
            "From placement to CONFIRMED or REJECTED (the reservation saga's latency).",
            ["status"],
            registry=registry,
            buckets=_SETTLE_BUCKETS,
        )
        self.timeouts = counter(
            "orders_saga_timeouts",
            "Orders rejected because the saga timeout passed while they were PENDING.",
            registry=registry,
        )
        self.compensations = counter(
            "orders_compensations",
            "Releases sent for reservations that arrived after their order was settled.",
            registry=registry,
        )
        self.foreign_facts = counter(
            "orders_foreign_inventory_events",
            "Inventory events about order ids this service does not know (ignored).",
            registry=registry,
        )
        self.pending_oldest_age = gauge(
            "orders_pending_oldest_age_seconds",
            "Age of the oldest PENDING order (0 when none); alert when near the saga timeout.",
            registry=registry,
        )

    def settled(self, before: Order, after: Order, now: float) -> None:
        """Count a status change (nothing for a change within one status)."""
        if before.status == after.status:
            return
        self.transitions.labels(after.status, after.reason or "").inc()
        if before.status == "PENDING":
            self.settle_seconds.labels(after.status).observe(max(now - after.created_at, 0.0))
