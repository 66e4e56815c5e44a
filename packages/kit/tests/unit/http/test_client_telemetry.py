"""ResilientClient telemetry: what it forwards (ids, trace context, deadline) and what it records."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stockflow_kit.http import instrument
from stockflow_kit.http.client import (
    DownstreamServerError,
    DownstreamUnavailableError,
    ResilientClient,
)
from stockflow_kit.http.testing import FakeDownstream
from stockflow_kit.observability import bind_correlation, extract_trace_context
from stockflow_kit.resilience import DEADLINE_HEADER, Deadline
from stockflow_kit.resilience.testing import ManualClock

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


def make_client(
    handler: Any, registry: CollectorRegistry, clock: ManualClock, **options: Any
) -> ResilientClient:
    transport = options.pop("transport", None) or httpx.MockTransport(handler)
    return ResilientClient(
        "stock", "http://stock.test", transport=transport, registry=registry, clock=clock, **options
    )


# ---------------------------------------------------------------- deadline


async def test_the_remaining_deadline_is_forwarded_and_shrinks_with_each_attempt(
    registry, clock
) -> None:
    downstream = FakeDownstream(503, 503, 200)

    def slow(request: httpx.Request) -> httpx.Response:
        response = downstream(request)
        clock.advance(1.5)
        return response

    async with make_client(slow, registry, clock, total_timeout=10.0) as client:
        await client.get("/stock/SKU-1")

    assert downstream.headers(DEADLINE_HEADER) == ["10000", "8500", "7000"]


async def test_the_tightest_of_the_given_bound_and_total_deadlines_is_forwarded(
    registry, clock
) -> None:
    downstream = FakeDownstream(200)

    async with make_client(downstream, registry, clock, total_timeout=10.0) as client:
        await client.get("/", deadline=Deadline(2.5, clock=clock))
        with Deadline(4.0, clock=clock).bind():
            await client.get("/")
            await client.get("/", deadline=Deadline(60.0, clock=clock))
        await client.get("/")

    assert downstream.headers(DEADLINE_HEADER) == ["2500", "4000", "10000", "10000"]


async def test_no_deadline_header_is_sent_without_any_deadline(registry, clock) -> None:
    downstream = FakeDownstream(200)

    async with make_client(downstream, registry, clock, total_timeout=None) as client:
        await client.get("/")

    assert downstream.headers(DEADLINE_HEADER) == [None]


# ---------------------------------------------------------------- correlation id


async def test_the_bound_correlation_id_is_forwarded_on_every_attempt(registry, clock) -> None:
    downstream = FakeDownstream(503, 200)

    async with make_client(downstream, registry, clock) as client:
        with bind_correlation("order-12345678"):
            await client.get("/stock/SKU-1")

    assert downstream.headers("X-Correlation-ID") == ["order-12345678"] * 2


async def test_a_new_correlation_id_is_made_per_call_when_none_is_bound(registry, clock) -> None:
    downstream = FakeDownstream(503, 200)

    async with make_client(downstream, registry, clock) as client:
        await client.get("/a")
        await client.get("/b")

    first, retry, second = downstream.headers("X-Correlation-ID")
    assert first == retry
    assert first != second
    assert first is not None
    assert len(first) == 32


async def test_a_correlation_id_given_as_a_header_wins(registry, clock) -> None:
    downstream = FakeDownstream(200)

    async with make_client(downstream, registry, clock) as client:
        with bind_correlation("bound-12345678"):
            await client.get("/", headers={"X-Correlation-ID": "given-12345678"})

    assert downstream.headers("X-Correlation-ID") == ["given-12345678"]


# ---------------------------------------------------------------- trace context


async def test_each_attempt_is_a_client_span_whose_context_is_forwarded(
    registry, clock, tracer_provider, exporter
) -> None:
    downstream = FakeDownstream(503, 200)
    tracer = tracer_provider.get_tracer("test")

    async with make_client(downstream, registry, clock, tracer_provider=tracer_provider) as client:
        with tracer.start_as_current_span("handle order") as parent:
            await client.get("/stock/SKU-1", route="/stock/{sku}")

    spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in spans] == ["GET /stock/{sku}"] * 2
    assert [s.attributes["http.response.status_code"] for s in spans] == [503, 200]
    assert spans[1].attributes["http.request.resend_count"] == 1
    assert spans[0].attributes["peer.service"] == "stock"
    trace_id = f"{parent.get_span_context().trace_id:032x}"
    sent = [tp.split("-") for tp in downstream.headers("traceparent")]  # type: ignore[union-attr]
    assert [part[1] for part in sent] == [trace_id] * 2
    assert [part[2] for part in sent] == [f"{s.context.span_id:016x}" for s in spans]
    assert all(s.parent.span_id == parent.get_span_context().span_id for s in spans)


async def test_a_failed_attempt_marks_its_span_as_an_error(
    registry, clock, tracer_provider, exporter
) -> None:
    downstream = FakeDownstream(httpx.ConnectError("refused"))

    async with make_client(
        downstream, registry, clock, tracer_provider=tracer_provider, attempts=1
    ) as client:
        with pytest.raises(DownstreamUnavailableError):
            await client.get("/")

    (span,) = exporter.get_finished_spans()
    assert span.attributes["error.type"] == "DownstreamUnavailableError"
    assert not span.status.is_ok


async def test_without_a_tracer_provider_the_callers_traceparent_is_forwarded_unchanged(
    registry, clock
) -> None:
    downstream = FakeDownstream(200)
    no_tracing = trace.NoOpTracerProvider()

    async with make_client(downstream, registry, clock, tracer_provider=no_tracing) as client:
        token = otel_context.attach(extract_trace_context({"traceparent": TRACEPARENT}))
        try:
            await client.get("/")
        finally:
            otel_context.detach(token)
        await client.get("/")

    assert downstream.headers("traceparent") == [TRACEPARENT, None]


# ---------------------------------------------------------------- metrics and logs


def requests_total(registry: CollectorRegistry, **labels: str) -> float:
    full = {"downstream": "stock", "method": "GET", "route": "", "status": "", "error": ""}
    return registry.get_sample_value("http_client_requests_total", {**full, **labels}) or 0.0


async def test_every_attempt_is_counted_by_status_or_error(registry, clock) -> None:
    replies = (503, 200, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 500)
    downstream = FakeDownstream(*replies)

    async with make_client(downstream, registry, clock, failure_threshold=3) as client:
        await client.get("/stock/SKU-1", route="/stock/{sku}")
        with pytest.raises(DownstreamServerError):
            await client.get("/stock/SKU-2", route="/stock/{sku}")
        with pytest.raises(DownstreamUnavailableError):
            await client.get("/stock/SKU-3", route="/stock/{sku}")

    route = "/stock/{sku}"
    assert requests_total(registry, route=route, status="503") == 1
    assert requests_total(registry, route=route, status="200") == 1
    assert requests_total(registry, route=route, error="connect_error") == 1
    assert requests_total(registry, route=route, error="timeout") == 1
    assert requests_total(registry, route=route, status="500") == 1
    assert requests_total(registry, route=route, error="circuit_open") == 1
    duration = {"downstream": "stock", "method": "GET"}
    sent = registry.get_sample_value("http_client_request_duration_seconds_count", duration)
    assert sent == 5  # the refusal by the open breaker is counted but not timed


async def test_the_route_label_is_empty_unless_a_template_is_given(registry, clock) -> None:
    async with make_client(FakeDownstream(201), registry, clock) as client:
        await client.post("/orders/9f1c", json={})

    assert requests_total(registry, method="POST", status="201") == 1


async def test_a_failed_call_is_logged_once_with_its_outcome(registry, clock) -> None:
    downstream = FakeDownstream(503)

    async with make_client(downstream, registry, clock) as client:
        with capture_logs() as logs, pytest.raises(DownstreamServerError):
            await client.get("/stock/SKU-1", route="/stock/{sku}")

    (failure,) = [log for log in logs if log["event"] == "http_client.request_failed"]
    assert failure["log_level"] == "warning"
    assert failure["downstream"] == "stock"
    assert failure["route"] == "/stock/{sku}"
    assert (failure["status"], failure["error"], failure["attempts"]) == (503, None, 3)


# ---------------------------------------------------------------- against a kit app, in process


async def test_an_instrumented_app_receives_the_correlation_id_and_deadline(
    registry, clock
) -> None:
    app = FastAPI()
    received: dict[str, str | None] = {}

    @app.get("/stock/{sku}")
    async def read_stock(sku: str, request: Request) -> dict[str, str]:
        received["correlation"] = request.headers.get("X-Correlation-ID")
        received["deadline"] = request.headers.get(DEADLINE_HEADER)
        return {"sku": sku}

    instrument(app, service="stock", registry=CollectorRegistry())
    transport = httpx.ASGITransport(app=app)

    async with make_client(None, registry, clock, transport=transport) as client:
        with bind_correlation("order-87654321"):
            response = await client.get("/stock/SKU-1", deadline=Deadline(1.25, clock=clock))

    assert response.json() == {"sku": "SKU-1"}
    assert response.headers["X-Correlation-ID"] == "order-87654321"
    assert received == {"correlation": "order-87654321", "deadline": "1250"}
