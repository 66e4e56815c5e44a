"""The console's figures, computed from metrics exported by a real prometheus_client registry
(the metric names the kit's HTTP instrumentation, bus, outbox and notifications export)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from stockflow.edge.domain.console import (
    FlowTotals,
    RedTotals,
    bus_figures,
    busiest_skus,
    flow,
    flow_totals,
    quantile,
    red,
    red_totals,
)

BUCKETS = (0.01, 0.1, 1.0)


class Service:
    """A registry with the kit's HTTP metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "", ["method", "route", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def serve(self, route: str, status: int, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self.requests.labels("GET", route, str(status)).inc()
            self.duration.labels("GET", route).observe(seconds)

    def families(self) -> list[Metric]:
        return list(text_string_to_metric_families(generate_latest(self.registry).decode()))


def test_red_totals_count_requests_and_5xx_and_leave_out_probes_and_the_stream() -> None:
    service = Service()
    service.serve("/orders", 200, 0.005, times=7)
    service.serve("/orders/{order_id}", 503, 0.5, times=3)
    service.serve("/readyz", 200, 0.001, times=50)
    service.serve("/metrics", 200, 0.001, times=50)
    service.serve("/console/stream", 200, 30.0)
    service.serve("<unmatched>", 200, 0.001, times=9)  # the kit's label of the probe routes
    totals = red_totals(service.families())
    assert totals.requests == 10
    assert totals.errors == 3
    assert totals.buckets[0.01] == 7
    assert totals.buckets[1.0] == 10
    assert totals.buckets[float("inf")] == 10


def test_red_over_a_window_is_the_difference_of_two_scrapes() -> None:
    service = Service()
    service.serve("/orders", 200, 0.5, times=100)  # before the window: slow
    older = red_totals(service.families())
    service.serve("/orders", 200, 0.005, times=18)
    service.serve("/orders", 500, 0.005, times=2)
    figures = red(older, red_totals(service.families()), seconds=10.0)
    assert figures.rate == pytest.approx(2.0)
    assert figures.error_rate == pytest.approx(0.1)
    assert figures.p50 is not None
    assert figures.p50 <= 0.01
    assert figures.p99 is not None
    assert figures.p99 <= 0.01


def test_red_without_an_older_scrape_has_no_rate_and_quantiles_of_everything() -> None:
    service = Service()
    service.serve("/orders", 200, 0.05, times=4)
    figures = red(None, red_totals(service.families()), seconds=0)
    assert figures.rate == 0
    assert figures.error_rate == 0
    assert figures.p50 is not None
    assert 0.01 < figures.p50 <= 0.1


def test_a_restarted_service_counts_from_zero() -> None:
    older = RedTotals(requests=1000, errors=10, buckets={1.0: 1000, float("inf"): 1000})
    newer = RedTotals(requests=5, errors=0, buckets={1.0: 5, float("inf"): 5})
    figures = red(older, newer, seconds=5)
    assert figures.rate == pytest.approx(1.0)
    assert figures.error_rate == 0


def test_no_requests_in_the_window_has_no_quantiles() -> None:
    totals = RedTotals(requests=3, buckets={0.1: 3, float("inf"): 3})
    figures = red(totals, totals, seconds=10)
    assert (figures.rate, figures.p50, figures.p99) == (0, None, None)


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.25, buckets) == pytest.approx(0.05)
    assert quantile(0.5, {}) is None
    assert quantile(0.99, {0.1: 0.0, float("inf"): 4.0}) == pytest.approx(0.1)  # beyond: +Inf


def test_bus_figures_read_the_exported_gauges_and_counters_only() -> None:
    registry = CollectorRegistry()
    pending = Gauge("messaging_consumer_pending", "", ["subscription"], registry=registry)
    pending.labels("a").set(3)
    pending.labels("b").set(4)
    age = Gauge("messaging_consumer_oldest_age_seconds", "", ["subscription"], registry=registry)
    age.labels("a").set(1.5)
    age.labels("b").set(7.0)
    messages = Counter(
        "messaging_messages", "", ["topic", "subscription", "outcome"], registry=registry
    )
    messages.labels("t", "a", "acked").inc(10)
    messages.labels("t", "a", "dead_lettered").inc(2)
    messages.labels("u", "b", "dead_lettered").inc(1)
    Gauge("outbox_backlog", "", registry=registry).set(5)
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    figures = bus_figures(families)
    assert figures.consumer_pending == 7
    assert figures.consumer_oldest_age_seconds == 7.0
    assert figures.dead_lettered == 3
    assert figures.outbox_backlog == 5
    assert figures.webhook_dead is None  # not exported here
    assert figures.webhook_backlog is None
    assert "dead_lettered" not in figures.public_json()
    assert figures.public_json()["consumers"] == [  # per consumer, by name
        {"subscription": "a", "pending": 3.0, "oldest_age_seconds": 1.5},
        {"subscription": "b", "pending": 4.0, "oldest_age_seconds": 7.0},
    ]


def test_no_dead_letter_yet_is_zero_when_the_counter_is_exported() -> None:
    registry = CollectorRegistry()
    Counter("messaging_messages", "", ["topic", "subscription", "outcome"], registry=registry)
    Counter("notifications_webhook_dead_deliveries", "", registry=registry)
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    figures = bus_figures(families)
    assert figures.dead_lettered == 0
    assert figures.webhook_dead == 0


def test_busiest_skus_rank_by_quantity_ordered() -> None:
    orders = [
        {"lines": [{"sku": "SKU-1", "qty": 1}, {"sku": "SKU-2", "qty": 5}]},
        {"lines": [{"sku": "SKU-3", "qty": 2}, {"sku": "SKU-1", "qty": 1}]},
        {"lines": [{"sku": "SKU-4", "qty": 1}]},
        {"status": "malformed"},
    ]
    assert busiest_skus(orders, 3) == ["SKU-2", "SKU-1", "SKU-3"]
    assert busiest_skus([], 3) == []


class Work:
    """A registry with the inventory's committed events and the orders' transitions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("inventory_events_committed", "", registry=self.registry)
        self.transitions = Counter(
            "orders_transitions", "", ["status", "reason"], registry=self.registry
        )

    def families(self) -> list[Metric]:
        return list(text_string_to_metric_families(generate_latest(self.registry).decode()))


def test_flow_is_events_per_second_and_saga_outcomes_per_minute_over_the_window() -> None:
    work = Work()
    work.events.inc(100)
    work.transitions.labels("CONFIRMED", "").inc(4)
    before = flow_totals(work.families())
    work.events.inc(250)
    work.transitions.labels("CONFIRMED", "").inc(10)
    work.transitions.labels("REJECTED", "insufficient_stock").inc(5)
    work.transitions.labels("SHIPPED", "").inc(7)  # not a saga outcome
    figures = flow(before, flow_totals(work.families()), 5.0)
    assert figures.events_per_second == pytest.approx(50.0)
    assert figures.outcomes_per_minute == {
        "CONFIRMED": pytest.approx(120.0),
        "REJECTED: insufficient_stock": pytest.approx(60.0),
    }


def test_flow_counts_from_zero_after_a_restart_and_is_none_for_what_is_not_exported() -> None:
    before = FlowTotals(events=1000.0, outcomes={"CONFIRMED": 50.0})
    after = FlowTotals(events=30.0, outcomes={"CONFIRMED": 6.0})
    figures = flow(before, after, 3.0)
    assert figures.events_per_second == pytest.approx(10.0)
    assert figures.outcomes_per_minute == {"CONFIRMED": pytest.approx(120.0)}
    plain = Service()
    plain.serve("/orders", 200, 0.01)
    assert flow_totals(plain.families()) == FlowTotals(None, None)
    assert flow(None, FlowTotals(events=5.0), 0.0).events_per_second == 0.0
