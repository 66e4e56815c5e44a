"""Pure ASGI middleware for kit-instrumented services.

Outermost first, as :func:`stockflow_kit.http.instrument` installs them:

1. :class:`CorrelationMiddleware`: correlation id, W3C trace context, the SERVER span;
2. :class:`MetricsMiddleware`: RED metrics by route template, and the access log;
3. :class:`LoadSheddingMiddleware`: 503 beyond a number of requests in flight;
4. :class:`BodyTimeoutMiddleware`: 408 for request bodies that arrive too slowly;
5. :class:`BodySizeLimitMiddleware`: 413 for oversized request bodies;
6. :class:`~stockflow_kit.http.problems.ProblemMiddleware`: exceptions become problems.

Each is plain ASGI (no ``BaseHTTPMiddleware``): it wraps ``receive`` and ``send`` and runs
the application in the same task, so context variables bound here are visible to handlers
and log lines. :func:`metrics_app`, :func:`metrics_endpoint` and :func:`metrics_route` serve
``GET /metrics``.
"""

from __future__ import annotations

from typing import Final

import structlog
from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, StatusCode, TracerProvider
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._access import CLIENT_CLOSED, DEFAULT_QUIET_PATHS, MetricsMiddleware
from stockflow_kit.http._exposition import metrics_app, metrics_endpoint, metrics_route
from stockflow_kit.http._limits import (
    BodySizeLimitMiddleware,
    BodyTimeoutMiddleware,
    LoadSheddingMiddleware,
)
from stockflow_kit.http._routes import OTHER_METHOD, UNMATCHED, method_label, route_template
from stockflow_kit.observability.correlation import (
    CORRELATION_HEADER,
    bind_correlation,
    is_valid_correlation_id,
    new_correlation_id,
)
from stockflow_kit.observability.tracing import extract_trace_context

__all__ = [
    "CLIENT_CLOSED",
    "DEFAULT_QUIET_PATHS",
    "UNMATCHED",
    "BodySizeLimitMiddleware",
    "BodyTimeoutMiddleware",
    "CorrelationMiddleware",
    "LoadSheddingMiddleware",
    "MetricsMiddleware",
    "metrics_app",
    "metrics_endpoint",
    "metrics_route",
]

_TRACER_NAME: Final = "stockflow_kit.http"
_SCOPE_KEY: Final = "stockflow_kit.correlation_id"
_HEADER_NAME: Final = CORRELATION_HEADER.lower().encode("latin-1")
_TRACEPARENT: Final = b"traceparent"


class CorrelationMiddleware:
    """Bind a correlation id and a SERVER span to each HTTP request.

    The ``X-Correlation-ID`` request header is kept when well-formed
    (:func:`~stockflow_kit.observability.correlation.is_valid_correlation_id`) and replaced
    by a new id otherwise, or generated when absent. The id is bound with
    :func:`~stockflow_kit.observability.correlation.bind_correlation` for the whole request
    (the log processors of :func:`~stockflow_kit.observability.configure_logging` add it,
    and the current span's ``trace_id``/``span_id``, to every line), *service* is bound in
    structlog's context variables, and the id is set on the response.

    The span is named ``"<METHOD> <route template>"`` (just the method for unmatched
    requests), is a child of the W3C ``traceparent`` of the request, and carries the stable
    HTTP semantic-convention attributes; 5xx responses and exceptions mark it as an error.
    Without a configured tracer provider no span is started at all, but an incoming trace
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
        self._tracer_provider = tracer_provider
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        self._tracing = tracer_provider is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        incoming: bytes | None = None
        traceparent = False
        for name, value in scope["headers"]:
            if name == _HEADER_NAME:
                if incoming is None:
                    incoming = value
            elif name == _TRACEPARENT:
                traceparent = True
        given = None if incoming is None else incoming.decode("latin-1")
        correlation_id = (
            given if given is not None and is_valid_correlation_id(given) else new_correlation_id()
        )
        scope[_SCOPE_KEY] = correlation_id
        root_path = str(scope.get("root_path", ""))
        outer = _outer_server_span(scope)
        span: Span | None = outer
        if span is None and self._records_spans():
            span = self._start_span(scope, Headers(scope=scope))
        elif span is None and traceparent:
            # No tracing here, but the caller's trace continues through this hop: its
            # context becomes current, for log lines and outgoing calls.
            span = trace.get_current_span(extract_trace_context(Headers(scope=scope)))
        owned = span is not None and outer is None and span.is_recording()
        status: int | None = None
        header_value = correlation_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_NAME]
                kept.append((_HEADER_NAME, header_value))
                message = {**message, "headers": kept}
            await send(message)

        error: BaseException | None = None
        tokens = (
            structlog.contextvars.bind_contextvars(service=self.service)
            if self.service is not None
            else None
        )
        try:
            with bind_correlation(correlation_id):
                if span is None:
                    await self.app(scope, receive, send_with_id)
                    return
                with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                    try:
                        await self.app(scope, receive, send_with_id)
                    except BaseException as exc:
                        error = exc
                        raise
                    finally:
                        if owned:
                            _finish_span(
                                span, scope, root_path=root_path, status=status, error=error
                            )
        finally:
            if tokens is not None:
                structlog.contextvars.reset_contextvars(**tokens)

    def _records_spans(self) -> bool:
        # Without a tracer provider of our own or a global one, a span would record nothing:
        # none is started (the no-op tracer's work and its context switch are skipped).
        # The global provider can be set once only: once it is, that is final.
        if not self._tracing:
            self._tracing = not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
        return self._tracing

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


def _outer_server_span(scope: Scope) -> Span | None:
    # FastAPI (>= 0.16x) starts its own SERVER span before the middleware stack when a tracer
    # provider is configured, and keeps it in scope["fastapi.telemetry"].span; Starlette's
    # OpenTelemetryMiddleware flags the scope. Either way the current span is theirs.
    telemetry = scope.get("fastapi.telemetry")
    if telemetry is not None:
        fastapi_span = getattr(telemetry, "span", None)
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
