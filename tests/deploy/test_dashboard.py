"""deploy/grafana/stockflow.json is what deploy/grafana/build.py generates, and it has the
panels issue 13 asks for."""

from __future__ import annotations

from tests.deploy.deploy_files import DASHBOARD, dashboard_builder, panel_queries


def test_committed_dashboard_is_the_generated_one() -> None:
    assert DASHBOARD.read_text() == dashboard_builder().render(), (
        "deploy/grafana/stockflow.json is stale: run `.venv/bin/python deploy/grafana/build.py`"
    )


def test_dashboard_has_every_panel_group() -> None:
    board = dashboard_builder().build()
    rows = [panel["title"] for panel in board["panels"] if panel["type"] == "row"]
    assert rows == ["RED per service", "Circuit breakers", "Messaging", "Outboxes", "Sagas"]
    queries = panel_queries(board)
    assert all(queries.values()), [title for title, exprs in queries.items() if not exprs]
    text = " ".join(expr for exprs in queries.values() for expr in exprs)
    for needed in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "circuit_breaker_state",
        "messaging_consumer_pending",
        "messaging_messages_total",
        "outbox_backlog",
        "orders_transitions_total",
    ):
        assert needed in text
