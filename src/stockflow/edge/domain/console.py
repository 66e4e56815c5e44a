"""The live console's figures: pure functions over parsed Prometheus metrics and order lists.

A service's ``/metrics`` text is parsed (``prometheus_client.parser``) into metric families;
:func:`red_totals` sums what the kit's HTTP instrumentation exports
(``http_requests_total{method,route,status}`` and the ``http_request_duration_seconds``
histogram), leaving out the probes and the console's own stream; :func:`red` turns two such
totals (an older and a newer) into rates and quantiles over the window between them.
:func:`bus_figures` reads the bus, outbox and webhook figures a service exports, when it does;
:func:`flow_totals` and :func:`flow` the inventory's committed events and the orders' saga
outcomes, as rates over the same window.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.metrics_core import Metric

__all__ = [
    "QUIET_ROUTES",
    "BusFigures",
    "Flow",
    "FlowTotals",
    "Red",
    "RedTotals",
    "bus_figures",
    "busiest_skus",
    "flow",
    "flow_totals",
    "quantile",
    "red",
    "red_totals",
]

QUIET_ROUTES: Final = frozenset(
    {"/healthz", "/readyz", "/metrics", "/console/stream", "<unmatched>"}
)
"""Routes left out of the RED figures: the probes and scrapes (the console's own, twice a
second per service), the console's stream (one request that lasts as long as a browser
watches), and ``<unmatched>`` (the kit's label when no FastAPI route matched: the probe routes
are plain Starlette routes and get it, like requests for unknown paths)."""


@dataclass(frozen=True)
class RedTotals:
    """Cumulative counts of one service at one moment."""

    requests: float = 0.0
    errors: float = 0.0
    """Requests answered with a 5xx."""
    buckets: Mapping[float, float] = field(default_factory=dict)
    """Upper bound (``le``) to cumulative count, summed over routes."""


@dataclass(frozen=True)
class Red:
    """Rate, errors and duration of one service over a window."""

    rate: float
    """Requests per second."""
    error_rate: float
    """Share of the requests answered with a 5xx (0 when there were none)."""
    p50: float | None
    """Seconds; ``None`` when no request ended in the window."""
    p99: float | None

    def as_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "error_rate": self.error_rate, "p50": self.p50, "p99": self.p99}


@dataclass(frozen=True)
class BusFigures:
    """What a service's metrics say about its bus, outbox and webhooks (``None``: not exported)."""

    consumer_pending: float | None = None
    consumer_oldest_age_seconds: float | None = None
    dead_lettered: float | None = None
    outbox_backlog: float | None = None
    outbox_oldest_age_seconds: float | None = None
    webhook_backlog: float | None = None
    webhook_dead: float | None = None
    consumers: tuple[tuple[str, float | None, float | None], ...] = ()
    """Per subscription: (its name, messages not yet acked, age of the oldest in seconds)."""

    def public_json(self) -> dict[str, Any]:
        return {
            "consumers": [
                {"subscription": name, "pending": pending, "oldest_age_seconds": oldest}
                for name, pending, oldest in self.consumers
            ],
            "consumer_pending": self.consumer_pending,
            "consumer_oldest_age_seconds": self.consumer_oldest_age_seconds,
            "outbox_backlog": self.outbox_backlog,
            "outbox_oldest_age_seconds": self.outbox_oldest_age_seconds,
            "webhook_backlog": self.webhook_backlog,
        }

    def staff_json(self) -> dict[str, float | None]:
        return {"dead_lettered": self.dead_lettered, "webhook_dead": self.webhook_dead}


def _samples(families: Iterable[Metric], name: str) -> Iterable[tuple[Mapping[str, str], float]]:
    for family in families:
        for sample in family.samples:
            if sample.name == name:
                yield sample.labels, sample.value


def red_totals(families: Sequence[Metric]) -> RedTotals:
    """The kit's HTTP request counts and duration buckets of one scrape, quiet routes left out."""
    requests = errors = 0.0
    for labels, value in _samples(families, "http_requests_total"):
        if labels.get("route") in QUIET_ROUTES:
            continue
        requests += value
        if labels.get("status", "").startswith("5"):
            errors += value
    buckets: dict[float, float] = {}
    for labels, value in _samples(families, "http_request_duration_seconds_bucket"):
        if labels.get("route") in QUIET_ROUTES or "le" not in labels:
            continue
        bound = float(labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + value
    return RedTotals(requests, errors, buckets)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The *q* quantile of a cumulative histogram (``le`` to count), interpolated linearly
    inside the bucket it falls in, as Prometheus' ``histogram_quantile`` does; ``None`` when it
    holds nothing. A quantile in the ``+Inf`` bucket is the highest finite bound."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound  # pragma: no cover - the last bucket holds the total


def red(older: RedTotals | None, newer: RedTotals, seconds: float) -> Red:
    """RED over the *seconds* between two totals of the same service. Without an older one
    (the first scrape) the rate is 0 and the quantiles are over everything so far. A counter
    that went down (the service restarted) counts from zero."""
    if older is None or seconds <= 0:
        return Red(0.0, _share(newer.errors, newer.requests), *_quantiles(newer.buckets))
    restarted = newer.requests < older.requests
    base = RedTotals() if restarted else older
    requests = newer.requests - base.requests
    errors = newer.errors - base.errors
    window = {b: c - base.buckets.get(b, 0.0) for b, c in newer.buckets.items()}
    return Red(requests / seconds, _share(errors, requests), *_quantiles(window))


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _quantiles(buckets: Mapping[float, float]) -> tuple[float | None, float | None]:
    return quantile(0.5, buckets), quantile(0.99, buckets)


def _sum(families: Sequence[Metric], name: str, **match: str) -> float | None:
    values = [
        v
        for labels, v in _samples(families, name)
        if all(labels.get(k) == want for k, want in match.items())
    ]
    return sum(values) if values else None


def _max(families: Sequence[Metric], name: str) -> float | None:
    values = [v for _, v in _samples(families, name)]
    return max(values) if values else None


def bus_figures(families: Sequence[Metric]) -> BusFigures:
    """The bus, outbox and webhook gauges and counters of one scrape (the kit's
    ``messaging_*`` and ``outbox_*``, notifications' ``notifications_webhook_*``)."""
    return BusFigures(
        consumer_pending=_sum(families, "messaging_consumer_pending"),
        consumer_oldest_age_seconds=_max(families, "messaging_consumer_oldest_age_seconds"),
        dead_lettered=_counter(families, "messaging_messages", outcome="dead_lettered"),
        outbox_backlog=_sum(families, "outbox_backlog"),
        outbox_oldest_age_seconds=_max(families, "outbox_oldest_age_seconds"),
        webhook_backlog=_sum(families, "notifications_webhook_backlog"),
        webhook_dead=_counter(families, "notifications_webhook_dead_deliveries"),
        consumers=_consumers(families),
    )


def _consumers(families: Sequence[Metric]) -> tuple[tuple[str, float | None, float | None], ...]:
    """Each subscription's pending count and oldest age (the kit's consumer gauges), by name."""
    pending = {
        labels.get("subscription", ""): value
        for labels, value in _samples(families, "messaging_consumer_pending")
    }
    oldest = {
        labels.get("subscription", ""): value
        for labels, value in _samples(families, "messaging_consumer_oldest_age_seconds")
    }
    return tuple((name, pending.get(name), oldest.get(name)) for name in sorted(pending | oldest))


def _counter(families: Sequence[Metric], family: str, **match: str) -> float | None:
    """A counter's total (0 when it has no sample yet); ``None`` when it is not exported."""
    if not any(f.name == family for f in families):
        return None
    return _sum(families, f"{family}_total", **match) or 0.0


def busiest_skus(orders: Iterable[Mapping[str, Any]], limit: int) -> list[str]:
    """The SKUs ordered most (by quantity) in *orders*, at most *limit*; ties by first seen."""
    tally: Counter[str] = Counter()
    for order in orders:
        for line in order.get("lines", ()):
            sku, qty = line.get("sku"), line.get("qty")
            if isinstance(sku, str) and isinstance(qty, int):
                tally[sku] += qty
    return [sku for sku, _ in tally.most_common(limit)]


SAGA_OUTCOMES: Final = frozenset({"CONFIRMED", "REJECTED"})
"""The order statuses that end the reservation saga (``orders_transitions_total{status}``)."""


@dataclass(frozen=True)
class FlowTotals:
    """Cumulative work of one service at one moment (``None``: it does not export it)."""

    events: float | None = None
    """Events the inventory committed (``inventory_events_committed_total``)."""
    outcomes: Mapping[str, float] | None = None
    """Sagas ended, by outcome (``CONFIRMED``, ``REJECTED: insufficient_stock``, …)."""


@dataclass(frozen=True)
class Flow:
    """The work of one service over a window: events/s and saga outcomes per minute."""

    events_per_second: float | None
    outcomes_per_minute: Mapping[str, float] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "events_per_second": self.events_per_second,
            "outcomes_per_minute": dict(self.outcomes_per_minute)
            if self.outcomes_per_minute is not None
            else None,
        }


def flow_totals(families: Sequence[Metric]) -> FlowTotals:
    """The inventory's committed events and the orders' saga outcomes of one scrape."""
    events = _sum(families, "inventory_events_committed_total")
    if not any(f.name == "orders_transitions" for f in families):
        return FlowTotals(events, None)
    outcomes: dict[str, float] = {}
    for labels, value in _samples(families, "orders_transitions_total"):
        status = labels.get("status", "")
        if status not in SAGA_OUTCOMES:
            continue
        reason = labels.get("reason", "")
        key = f"{status}: {reason}" if reason else status
        outcomes[key] = outcomes.get(key, 0.0) + value
    return FlowTotals(events, outcomes)


def flow(older: FlowTotals | None, newer: FlowTotals, seconds: float) -> Flow:
    """The rates of the *seconds* between two flow totals of the same service (0 without an
    older one; a counter that went down, a restart, counts from zero)."""
    if older is None or seconds <= 0:
        seconds, older = 0.0, FlowTotals()
    events = None
    if newer.events is not None:
        before = older.events or 0.0
        events = _rate(newer.events - (before if newer.events >= before else 0.0), seconds)
    outcomes = None
    if newer.outcomes is not None:
        was = older.outcomes or {}
        outcomes = {}
        for key, count in sorted(newer.outcomes.items()):
            before = was.get(key, 0.0)
            outcomes[key] = 60 * _rate(count - (before if count >= before else 0.0), seconds)
    return Flow(events, outcomes)


def _rate(delta: float, seconds: float) -> float:
    return delta / seconds if seconds > 0 else 0.0
