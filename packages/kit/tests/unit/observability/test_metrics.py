from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from stockflow_kit.observability import counter, gauge, histogram, http_server_metrics


def test_asking_twice_for_an_instrument_returns_the_same_one() -> None:
    registry = CollectorRegistry()

    first = counter("jobs", "Jobs done.", ("kind",), registry=registry)
    second = counter("jobs", "Jobs done.", ("kind",), registry=registry)

    assert first is second


def test_the_same_name_in_another_registry_is_another_instrument() -> None:
    one, other = CollectorRegistry(), CollectorRegistry()

    assert gauge("depth", "Depth.", registry=one) is not gauge("depth", "Depth.", registry=other)


def test_a_name_reused_for_another_kind_of_instrument_is_an_error() -> None:
    registry = CollectorRegistry()
    histogram("latency_seconds", "Latency.", registry=registry)

    with pytest.raises(TypeError, match="already exists as Histogram"):
        counter("latency_seconds", "Latency.", registry=registry)


def test_the_http_server_instruments_have_the_red_names_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = http_server_metrics(registry)

    metrics.requests.labels("GET", "/inventory/{sku}", "200").inc()
    metrics.duration.labels("GET", "/inventory/{sku}").observe(0.003)
    metrics.in_flight.labels("GET").inc()

    labels = {"method": "GET", "route": "/inventory/{sku}"}
    assert registry.get_sample_value("http_requests_total", {**labels, "status": "200"}) == 1
    assert registry.get_sample_value("http_request_duration_seconds_count", labels) == 1
    assert registry.get_sample_value("http_requests_in_flight", {"method": "GET"}) == 1


def test_the_http_server_instruments_are_created_once_per_registry() -> None:
    registry = CollectorRegistry()

    first, second = http_server_metrics(registry), http_server_metrics(registry)

    assert first.requests is second.requests
    assert first.duration is second.duration
    assert first.in_flight is second.in_flight
