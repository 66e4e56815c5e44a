"""The stockflow Grafana dashboard, as code (grafana-foundation-sdk).

``python deploy/grafana/build.py`` writes ``deploy/grafana/stockflow.json`` (committed; a test
regenerates it and compares, and checks every query names a metric the services export).
Rows: RED per service, circuit breakers, messaging (lag, events/s, dead letters), outboxes,
saga outcomes. Queries group by ``job`` (the service: deploy/prometheus/prometheus.yml).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUTPUT = Path(__file__).with_name("stockflow.json")
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
"""The datasource the compose deployment provisions (deploy/grafana/provisioning)."""


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )


def _series(title: str, unit: str, *queries: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(12)
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, ref=chr(ord("A") + index)))
    return panel


def build() -> dict[str, object]:
    """The dashboard as the JSON object Grafana imports."""
    red = [
        _series(
            "Requests/s by service and status",
            "reqps",
            ("sum by (job, status) (rate(http_requests_total[1m]))", "{{job}} {{status}}"),
        ),
        _series(
            "Error ratio (5xx) by service",
            "percentunit",
            (
                'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
                " / sum by (job) (rate(http_requests_total[5m]))",
                "{{job}}",
            ),
        ),
        _series(
            "Latency p50 / p99 by service",
            "s",
            (
                "histogram_quantile(0.5, sum by (job, le)"
                " (rate(http_request_duration_seconds_bucket[5m])))",
                "{{job}} p50",
            ),
            (
                "histogram_quantile(0.99, sum by (job, le)"
                " (rate(http_request_duration_seconds_bucket[5m])))",
                "{{job}} p99",
            ),
        ),
        _series(
            "In flight by service",
            "short",
            ("sum by (job) (http_requests_in_flight)", "{{job}}"),
        ),
    ]
    breakers = [
        statetimeline.Panel()
        .title("Circuit breakers (0 closed, 1 half-open, 2 open)")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .with_target(_query("max by (job, name) (circuit_breaker_state)", "{{job}} → {{name}}")),
        _series(
            "Breaker calls/s by outcome",
            "ops",
            (
                "sum by (name, outcome) (rate(circuit_breaker_calls_total[1m]))",
                "{{name}} {{outcome}}",
            ),
        ),
    ]
    messaging = [
        _series(
            "Consumer lag (messages not yet acked)",
            "short",
            ("max by (job, subscription) (messaging_consumer_pending)", "{{subscription}}"),
        ),
        _series(
            "Oldest unacked message",
            "s",
            (
                "max by (job, subscription) (messaging_consumer_oldest_age_seconds)",
                "{{subscription}}",
            ),
        ),
        _series(
            "Events/s by outcome",
            "ops",
            (
                "sum by (outcome) (rate(messaging_messages_total[1m]))",
                "{{outcome}}",
            ),
            ("sum (rate(inventory_events_committed_total[1m]))", "inventory events committed"),
        ),
        _series(
            "Dead letters (10 m)",
            "short",
            (
                'sum by (subscription) (increase(messaging_messages_total{outcome="dead_lettered"}[10m]))',
                "{{subscription}}",
            ),
            (
                "sum (increase(notifications_webhook_dead_deliveries_total[10m]))",
                "webhook deliveries",
            ),
        ),
    ]
    outboxes = [
        _series(
            "Outbox backlog",
            "short",
            ("max by (job, outbox) (outbox_backlog)", "{{outbox}}"),
        ),
        _series(
            "Outbox oldest entry",
            "s",
            ("max by (job, outbox) (outbox_oldest_age_seconds)", "{{outbox}}"),
        ),
    ]
    sagas = [
        _series(
            "Saga outcomes/s",
            "ops",
            (
                "sum by (status, reason) (rate(orders_transitions_total[1m]))",
                "{{status}} {{reason}}",
            ),
            ("sum (rate(orders_placed_total[1m]))", "placed"),
            ("sum (rate(orders_saga_timeouts_total[1m]))", "timed out"),
            ("sum (rate(orders_compensations_total[1m]))", "compensated"),
        ),
        stat.Panel()
        .title("Oldest PENDING order")
        .unit("s")
        .datasource(DATASOURCE)
        .height(8)
        .span(6)
        .with_target(_query("max (orders_pending_oldest_age_seconds)", "oldest pending")),
        stat.Panel()
        .title("Invariant violations (1 h)")
        .datasource(DATASOURCE)
        .height(8)
        .span(6)
        .with_target(
            _query("sum (increase(inventory_invariant_violations_total[1h]))", "violations")
        ),
    ]
    board = (
        dashboard.Dashboard("stockflow")
        .uid("stockflow")
        .tags(["stockflow"])
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("utc")
    )
    rows = (
        ("RED per service", red),
        ("Circuit breakers", breakers),
        ("Messaging", messaging),
        ("Outboxes", outboxes),
        ("Sagas", sagas),
    )
    for title, panels in rows:
        board = board.with_row(dashboard.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    """The committed file's exact text."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
