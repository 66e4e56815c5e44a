"""The helpers of the metric-name checks themselves (so those checks can fail)."""

from __future__ import annotations

from tests.deploy.promql import exported_names, metric_names


def test_metric_names_of_an_expression() -> None:
    expr = (
        'sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / '
        "sum by (job) (rate(http_requests_total[5m])) > (14.4 * 0.001) "
        "and job:http_requests:error_ratio_rate5m > 0.1 and max by (job, name) (max_over_time(circuit_breaker_state[1m])) == 2 or "
        "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[1m])))"
    )
    assert metric_names(expr) == {
        "job:http_requests:error_ratio_rate5m",
        "http_requests_total",
        "circuit_breaker_state",
        "x_seconds_bucket",
    }


def test_exported_names_include_families_without_children() -> None:
    text = (
        "# HELP m_total M.\n# TYPE m_total counter\n"
        "# HELP d_seconds D.\n# TYPE d_seconds histogram\n"
        'd_seconds_bucket{le="+Inf"} 1.0\nd_seconds_count 1.0\nd_seconds_sum 0.1\n'
        "# HELP g G.\n# TYPE g gauge\ng 3.0\n"
    )
    names = exported_names([text])
    assert {"m_total", "d_seconds_bucket", "d_seconds_count", "d_seconds_sum", "g"} <= names
    assert "m" in names
    assert "nope" not in names
