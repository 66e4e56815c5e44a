from __future__ import annotations

from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.opentelemetry import OpenTelemetryMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from stockflow_kit.http import CorrelationMiddleware, instrument
from stockflow_kit.observability import (
    configure_logging,
    current_trace_ids,
    get_correlation_id,
    inject_trace_headers,
    is_valid_correlation_id,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def _app(seen: dict[str, Any], **options: Any) -> Starlette:
    async def item(request: Request) -> Response:
        structlog.get_logger("handler").info("handler.item_read")
        seen["correlation_id"] = get_correlation_id()
        seen["trace"] = current_trace_ids()
        seen["outgoing"] = inject_trace_headers({})
        return JSONResponse({"id": request.path_params["id"]})

    async def failing(request: Request) -> Response:
        raise RuntimeError("boom")

    async def unavailable(request: Request) -> Response:
        return PlainTextResponse("down", status_code=503)

    async def stamped(request: Request) -> Response:
        return PlainTextResponse("x", headers={"X-Correlation-ID": "from-the-handler"})

    return Starlette(
        routes=[
            Route("/items/{id}", item, methods=["GET", "BREW"]),
            Route("/failing", failing),
            Route("/unavailable", unavailable),
            Route("/stamped", stamped),
        ],
        middleware=[Middleware(CorrelationMiddleware, **options)],
    )


async def test_a_well_formed_correlation_id_is_kept_echoed_and_bound(send) -> None:
    seen: dict[str, Any] = {}

    response = await send(
        _app(seen), "GET", "/items/1", headers={"X-Correlation-ID": "req-12345678"}
    )

    assert response.headers["X-Correlation-ID"] == "req-12345678"
    assert seen["correlation_id"] == "req-12345678"
    assert get_correlation_id() is None


async def test_a_malformed_correlation_id_is_replaced_by_a_new_one(send) -> None:
    seen: dict[str, Any] = {}

    response = await send(_app(seen), "GET", "/items/1", headers={"X-Correlation-ID": "bad id!"})

    echoed = response.headers["X-Correlation-ID"]
    assert echoed != "bad id!"
    assert is_valid_correlation_id(echoed)
    assert seen["correlation_id"] == echoed


async def test_a_missing_correlation_id_is_generated_and_echoed(send) -> None:
    seen: dict[str, Any] = {}

    response = await send(_app(seen), "GET", "/items/1")

    assert is_valid_correlation_id(response.headers["X-Correlation-ID"])
    assert seen["correlation_id"] == response.headers["X-Correlation-ID"]


async def test_the_echoed_id_replaces_one_set_by_the_application(send) -> None:
    response = await send(_app({}), "GET", "/stamped", headers={"X-Correlation-ID": "req-12345678"})

    assert response.headers.get_list("X-Correlation-ID") == ["req-12345678"]


async def test_log_lines_of_the_request_carry_the_correlation_id_and_service(
    send, log_lines
) -> None:
    configure_logging(json=True, stream=log_lines.stream)

    await send(
        _app({}, service="inventory"),
        "GET",
        "/items/1",
        headers={"X-Correlation-ID": "req-12345678"},
    )

    [line] = log_lines.events("handler.item_read")
    assert line["correlation_id"] == "req-12345678"
    assert line["service"] == "inventory"


async def test_the_incoming_traceparent_is_the_parent_of_the_server_span(
    send, tracer_provider, exporter, log_lines
) -> None:
    configure_logging(json=True, stream=log_lines.stream)
    app = _app({}, tracer_provider=tracer_provider)

    await send(app, "GET", "/items/7", headers={"traceparent": TRACEPARENT})

    [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /items/{id}"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT_SPAN_ID
    assert span.attributes["http.route"] == "/items/{id}"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["url.path"] == "/items/7"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["client.address"] == "127.0.0.1"
    assert span.status.status_code is StatusCode.UNSET
    [line] = log_lines.events("handler.item_read")
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == f"{span.context.span_id:016x}"


async def test_without_a_traceparent_the_server_span_starts_a_trace(
    send, tracer_provider, exporter
) -> None:
    await send(_app({}, tracer_provider=tracer_provider), "GET", "/items/7")

    [span] = exporter.get_finished_spans()
    assert span.parent is None


async def test_a_5xx_response_marks_the_span_as_an_error(send, tracer_provider, exporter) -> None:
    await send(_app({}, tracer_provider=tracer_provider), "GET", "/unavailable")

    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "503"


async def test_an_exception_is_recorded_on_the_span_and_propagates(
    send, tracer_provider, exporter
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await send(_app({}, tracer_provider=tracer_provider), "GET", "/failing")

    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    assert [event.name for event in span.events] == ["exception"]


async def test_an_unmatched_request_span_is_named_by_its_method_only(
    send, tracer_provider, exporter
) -> None:
    await send(_app({}, tracer_provider=tracer_provider), "GET", "/nowhere")

    [span] = exporter.get_finished_spans()
    assert span.name == "GET"
    assert "http.route" not in span.attributes


async def test_a_non_standard_method_is_named_http_and_kept_as_the_original(
    send, tracer_provider, exporter
) -> None:
    await send(_app({}, tracer_provider=tracer_provider), "BREW", "/items/1")

    [span] = exporter.get_finished_spans()
    assert span.name == "HTTP /items/{id}"
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "BREW"


async def test_without_a_tracer_provider_the_callers_trace_context_still_propagates(send) -> None:
    seen: dict[str, Any] = {}

    await send(_app(seen), "GET", "/items/1", headers={"traceparent": TRACEPARENT})

    assert seen["trace"] == {"trace_id": TRACE_ID, "span_id": PARENT_SPAN_ID}
    assert seen["outgoing"]["traceparent"].startswith(f"00-{TRACE_ID}-{PARENT_SPAN_ID}-")


async def test_fastapis_native_server_span_is_reused_instead_of_doubled(
    send, tracer_provider, exporter, registry, log_lines
) -> None:
    configure_logging(json=True, stream=log_lines.stream)
    app = FastAPI(telemetry={"tracer_provider": tracer_provider, "operation_spans": False})

    @app.get("/items/{item_id}")
    async def read_item(item_id: str) -> dict[str, str]:
        structlog.get_logger("handler").info("handler.item_read")
        return {"id": item_id}

    instrument(app, service="inventory", registry=registry, tracer_provider=tracer_provider)

    await send(app, "GET", "/items/1", headers={"traceparent": TRACEPARENT})

    [span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.instrumentation_scope.name == "fastapi"
    assert span.name == "GET /items/{item_id}"
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT_SPAN_ID
    [line] = log_lines.events("handler.item_read")
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == f"{span.context.span_id:016x}"


async def test_starlettes_opentelemetry_middleware_span_is_reused_instead_of_doubled(
    send, tracer_provider, exporter
) -> None:
    seen: dict[str, Any] = {}
    inner = _app(seen, tracer_provider=tracer_provider)
    app = OpenTelemetryMiddleware(inner, tracer_provider=tracer_provider)

    await send(app, "GET", "/items/1")

    [span] = exporter.get_finished_spans()
    assert span.instrumentation_scope.name == "starlette"
    assert seen["trace"]["span_id"] == f"{span.context.span_id:016x}"


async def test_a_nested_instance_passes_requests_through(send, tracer_provider, exporter) -> None:
    seen: dict[str, Any] = {}
    inner = _app(seen, tracer_provider=tracer_provider)
    outer = Starlette(
        routes=[Mount("/sub", app=inner)],
        middleware=[Middleware(CorrelationMiddleware, tracer_provider=tracer_provider)],
    )

    response = await send(outer, "GET", "/sub/items/1")

    assert response.headers.get_list("X-Correlation-ID") == [seen["correlation_id"]]
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /sub/items/{id}"


async def test_other_scope_types_pass_through_untouched(tracer_provider, exporter) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        pass

    middleware = CorrelationMiddleware(app, tracer_provider=tracer_provider)
    await middleware({"type": "lifespan"}, receive, send)

    assert scopes == [{"type": "lifespan"}]
    assert exporter.get_finished_spans() == ()


async def test_an_application_that_never_responds_leaves_an_error_span(
    drive, tracer_provider, exporter
) -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return

    await drive(CorrelationMiddleware(silent, tracer_provider=tracer_provider), method="GET")

    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "incomplete_response"
