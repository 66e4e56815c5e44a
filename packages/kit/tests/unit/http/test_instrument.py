from __future__ import annotations

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from structlog.testing import capture_logs

import stockflow_kit.http
from stockflow_kit.http import ErrorTable, instrument


class OutOfStockError(Exception):
    pass


def _service(registry: CollectorRegistry, **options: object) -> FastAPI:
    app = FastAPI()

    @app.get("/inventory/{sku}")
    async def read_stock(sku: str) -> dict[str, str]:
        if sku == "crash":
            raise RuntimeError("kaput")
        if sku == "gone":
            raise OutOfStockError(sku)
        return {"sku": sku}

    @app.post("/inventory/{sku}")
    async def receive_stock(sku: str, request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    errors = ErrorTable({OutOfStockError: (409, "Out of stock")})
    instrument(app, service="inventory", errors=errors, registry=registry, **options)
    return app


def _count(registry: CollectorRegistry, route: str, status: int, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return registry.get_sample_value("http_requests_total", labels) or 0.0


async def test_an_exception_in_a_handler_is_a_500_with_the_correlation_id_and_is_counted(
    send, registry
) -> None:
    with capture_logs() as logs:
        response = await send(
            _service(registry),
            "GET",
            "/inventory/crash",
            headers={"X-Correlation-ID": "req-12345678"},
        )

    assert response.status_code == 500
    assert response.headers["X-Correlation-ID"] == "req-12345678"
    assert response.json()["correlation_id"] == "req-12345678"
    assert _count(registry, "/inventory/{sku}", 500) == 1
    events = [log["event"] for log in logs]
    assert events == ["http.unhandled_exception", "http.request_completed"]
    assert all(log["correlation_id"] == "req-12345678" for log in logs)


async def test_mapped_errors_size_limits_and_unknown_routes_all_go_through_the_stack(
    send, registry
) -> None:
    app = _service(registry, max_body_bytes=4)

    conflict = await send(app, "GET", "/inventory/gone")
    too_large = await send(app, "POST", "/inventory/SKU-1", content=b"12345")
    unknown = await send(app, "GET", "/nope")

    assert [conflict.status_code, too_large.status_code, unknown.status_code] == [409, 413, 404]
    assert all("X-Correlation-ID" in r.headers for r in (conflict, too_large, unknown))
    assert _count(registry, "/inventory/{sku}", 409) == 1
    assert _count(registry, "<unmatched>", 413, method="POST") == 1
    assert _count(registry, "<unmatched>", 404) == 1


async def test_metrics_are_served_as_prometheus_text_at_exactly_slash_metrics(
    send, registry
) -> None:
    app = _service(registry)
    await send(app, "GET", "/inventory/SKU-1")

    response = await send(app, "GET", "/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert (
        'http_requests_total{method="GET",route="/inventory/{sku}",status="200"} 1.0'
        in response.text
    )
    assert "/metrics" not in app.openapi()["paths"]


async def test_the_metrics_path_can_be_moved_or_left_out(send, registry) -> None:
    moved = _service(registry, metrics_path="/internal/metrics")
    none = _service(CollectorRegistry(), metrics_path=None)

    assert (await send(moved, "GET", "/internal/metrics")).status_code == 200
    assert (await send(none, "GET", "/metrics")).status_code == 404


async def test_load_shedding_is_installed_when_asked_for(send, registry) -> None:
    app = Starlette(routes=[Route("/", PlainTextResponse("ok"))])
    instrument(app, service="edge", registry=registry, max_in_flight=1, max_body_bytes=None)

    response = await send(app, "GET", "/")

    assert response.status_code == 200
    assert _count(registry, "/", 200) == 1


def test_an_application_cannot_be_instrumented_twice(registry) -> None:
    app = _service(registry)

    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument(app, service="inventory", registry=registry)


def test_the_public_api_of_http_is_pinned() -> None:
    assert sorted(stockflow_kit.http.__all__) == sorted(
        [
            "IDEMPOTENCY_KEY_HEADER",
            "DownstreamClientError",
            "DownstreamError",
            "DownstreamServerError",
            "DownstreamStatusError",
            "DownstreamTimeoutError",
            "DownstreamTransportError",
            "DownstreamUnavailableError",
            "ResilientClient",
            "is_downstream_failure",
            "ABOUT_BLANK",
            "CLIENT_CLOSED",
            "DEFAULT_BODY_TIMEOUT_SECONDS",
            "DEFAULT_MAX_IN_FLIGHT",
            "DEFAULT_QUIET_PATHS",
            "INTERNAL_ERROR_DETAIL",
            "PROBLEM_MEDIA_TYPE",
            "UNMATCHED",
            "BodySizeLimitMiddleware",
            "BodyTimeoutMiddleware",
            "CorrelationMiddleware",
            "ErrorMapping",
            "ErrorTable",
            "KitMiddleware",
            "LoadSheddingMiddleware",
            "MetricsMiddleware",
            "Problem",
            "ProblemMiddleware",
            "http_exception_response",
            "install_problem_handlers",
            "instrument",
            "internal_error_response",
            "metrics_app",
            "metrics_endpoint",
            "metrics_route",
            "problem_response",
            "status_title",
            "validation_error_response",
            "DEFAULT_IDEMPOTENCY_CALLER",
            "DEFAULT_IDEMPOTENCY_RETENTION",
            "DEFAULT_MAX_IDEMPOTENCY_KEY_LENGTH",
            "IDEMPOTENCY_ERRORS",
            "IDEMPOTENCY_NAMESPACE",
            "IDEMPOTENT_REPLAYED_HEADER",
            "Handled",
            "Idempotency",
            "IdempotencyConflictError",
            "IdempotencyContext",
            "IdempotencyError",
            "IdempotencyHandler",
            "IdempotencyInProgressError",
            "IdempotencyKeyRequiredError",
            "IdempotencyRecord",
            "IdempotencyStore",
            "InMemoryIdempotencyStore",
            "InvalidIdempotencyKeyError",
            "PooledTransport",
            "PostgresIdempotencyStore",
            "SqliteIdempotencyStore",
            "idempotency_key_parameter",
            "idempotency_message_id",
            "idempotency_request_hash",
        ]
    )
    for name in stockflow_kit.http.__all__:
        assert hasattr(stockflow_kit.http, name)
