"""Pure ASGI middleware for kit-instrumented services.

Outermost first, as :func:`stockflow_kit.http.instrument` installs them:

1. :class:`CorrelationMiddleware`: correlation id, W3C trace context, the SERVER span;
2. :class:`MetricsMiddleware`: RED metrics by route template, and the access log;
3. :class:`LoadSheddingMiddleware`: 503 beyond a number of requests in flight;
4. :class:`BodySizeLimitMiddleware`: 413 for oversized request bodies;
5. :class:`~stockflow_kit.http.problems.ProblemMiddleware`: exceptions become problems.

Each is plain ASGI (no ``BaseHTTPMiddleware``): it wraps ``receive`` and ``send`` and runs
the application in the same task, so context variables bound here are visible to handlers
and log lines. :func:`metrics_app`, :func:`metrics_endpoint` and :func:`metrics_route` serve
``GET /metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, TracerProvider
from prometheus_client import CollectorRegistry
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._exposition import metrics_app, metrics_endpoint, metrics_route
from stockflow_kit.http._limits import BodySizeLimitMiddleware, LoadSheddingMiddleware
from stockflow_kit.http._routes import OTHER_METHOD, UNMATCHED, method_label, route_template
from stockflow_kit.observability.correlation import (
    CORRELATION_HEADER,
    bind_correlation,
    get_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
)
from stockflow_kit.observability.metrics import http_server_metrics
from stockflow_kit.observability.tracing import current_trace_ids, extract_trace_context

__all__ = [
    "DEFAULT_QUIET_PATHS",
    "UNMATCHED",
    "BodySizeLimitMiddleware",
    "CorrelationMiddleware",
    "LoadSheddingMiddleware",
    "MetricsMiddleware",
    "metrics_app",
    "metrics_endpoint",
    "metrics_route",
]

DEFAULT_QUIET_PATHS: Final = frozenset({"/metrics", "/healthz", "/readyz"})
"""Paths left out of the access log by default (they are still counted in the metrics)."""

_TRACER_NAME: Final = "stockflow_kit.http"
_SCOPE_KEY: Final = "stockflow_kit.correlation_id"
_HEADER_NAME: Final = CORRELATION_HEADER.lower().encode("latin-1")
_log = structlog.get_logger(_TRACER_NAME)


class CorrelationMiddleware:
    """Bind a correlation id and a SERVER span to each HTTP request.

    The ``X-Correlation-ID`` request header is kept when well-formed
    (:func:`~stockflow_kit.observability.correlation.is_valid_correlation_id`) and replaced
    by a new id otherwise, or generated when absent. The id is bound with
    :func:`~stockflow_kit.observability.correlation.bind_correlation` and in structlog's
    context variables (with ``trace_id``, ``span_id`` and *service*) for the whole request,
    and set on the response.

    The span is named ``"<METHOD> <route template>"`` (just the method for unmatched
    requests), is a child of the W3C ``traceparent`` of the request, and carries the stable
    HTTP semantic-convention attributes; 5xx responses and exceptions mark it as an error.
    Without a configured tracer provider nothing is recorded, but the incoming trace
    context still becomes current, so logs and outgoing calls carry the caller's trace id.

    When an outer layer already owns the server span (FastAPI's native telemetry, active
    once a tracer provider is configured, or Starlette's ``OpenTelemetryMiddleware``), no
    second span is started: its ids are bound instead. A nested instance (a mounted,
    instrumented sub-application) passes requests straight through.

    Args:
        app: The ASGI application to wrap.
        service: Bound as ``service`` on every log line of the request when given; useful
            when several services share one process. ``None`` by default.
        tracer_provider: Where spans go; the global provider (also one configured later)
            when ``None`` (the default).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        incoming = headers.get(CORRELATION_HEADER)
        correlation_id = (
            incoming
            if incoming is not None and is_valid_correlation_id(incoming)
            else new_correlation_id()
        )
        scope[_SCOPE_KEY] = correlation_id
        root_path = str(scope.get("root_path", ""))
        outer = _outer_server_span(scope)
        span = outer if outer is not None else self._start_span(scope, headers)
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_NAME]
                kept.append((_HEADER_NAME, correlation_id.encode("latin-1")))
                message = {**message, "headers": kept}
            await send(message)

        fields = {"correlation_id": correlation_id}
        fields.update(current_trace_ids(trace.set_span_in_context(span)))
        if self.service is not None:
            fields["service"] = self.service
        error: BaseException | None = None
        with (
            bind_correlation(correlation_id),
            structlog.contextvars.bound_contextvars(**fields),
            trace.use_span(span, record_exception=False, set_status_on_exception=False),
        ):
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if outer is None:
                    _finish_span(span, scope, root_path=root_path, status=status, error=error)

    def _start_span(self, scope: Scope, headers: Headers) -> Span:
        method = method_label(scope["method"])
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if method == OTHER_METHOD:
            attributes["http.request.method_original"] = scope["method"]
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        if user_agent := headers.get("user-agent"):
            attributes["user_agent.original"] = user_agent
        return self._tracer.start_span(
            _span_method(method),
            context=extract_trace_context(headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )


class MetricsMiddleware:
    """Record RED metrics for each HTTP request and write one access-log line.

    The instruments are those of
    :func:`~stockflow_kit.observability.metrics.http_server_metrics`: the route label is the
    matched route *template* (:data:`UNMATCHED` when no route matched), never the raw path;
    unknown methods are counted as ``_OTHER``. A request whose application raised before
    responding is counted as a 500.

    The access-log line ``http.request_completed`` has ``method``, ``route``, ``path``,
    ``status``, ``duration_ms``, ``client``, ``correlation_id`` and ``trace_id``/``span_id``
    (when there is a span); it is written at *info*, or *error* for 5xx.

    Args:
        app: The ASGI application to wrap.
        registry: Where the instruments live; the process-wide default when ``None``.
        log_requests: Write the access log; ``True`` by default.
        quiet_paths: Exact paths left out of the access log (not out of the metrics);
            :data:`DEFAULT_QUIET_PATHS` by default.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry | None = None,
        log_requests: bool = True,
        quiet_paths: Iterable[str] = DEFAULT_QUIET_PATHS,
    ) -> None:
        self.app = app
        self.metrics = http_server_metrics(registry)
        self.log_requests = log_requests
        self.quiet_paths = frozenset(quiet_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = method_label(scope["method"])
        root_path = str(scope.get("root_path", ""))
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self.metrics.in_flight.labels(method)
        in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            route = route_template(scope, root_path=root_path) or UNMATCHED
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(elapsed)
            if self.log_requests and scope["path"] not in self.quiet_paths:
                client = scope.get("client")
                log = _log.error if status >= 500 else _log.info
                log(
                    "http.request_completed",
                    method=scope["method"],
                    route=route,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                    client=client[0] if client else None,
                    correlation_id=get_correlation_id(),
                    **current_trace_ids(),
                )


def _outer_server_span(scope: Scope) -> Span | None:
    # FastAPI (>= 0.16x) starts its own SERVER span before the middleware stack when a tracer
    # provider is configured, and keeps it in scope["fastapi.telemetry"].span; Starlette's
    # OpenTelemetryMiddleware flags the scope. Either way the current span is theirs.
    fastapi_span = getattr(scope.get("fastapi.telemetry"), "span", None)
    if isinstance(fastapi_span, Span):
        return fastapi_span
    if scope.get("starlette.opentelemetry"):
        return trace.get_current_span()
    return None


def _span_method(method: str) -> str:
    return "HTTP" if method == OTHER_METHOD else method


def _finish_span(
    span: Span, scope: Scope, *, root_path: str, status: int | None, error: BaseException | None
) -> None:
    template = route_template(scope, root_path=root_path)
    if template is not None:
        span.update_name(f"{_span_method(method_label(scope['method']))} {template}")
        span.set_attribute("http.route", template)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if error is not None:
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(StatusCode.ERROR)
    elif status is None or status >= 500:
        span.set_attribute("error.type", str(status or "incomplete_response"))
        span.set_status(StatusCode.ERROR)
    span.end()
