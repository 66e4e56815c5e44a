"""Pure ASGI middleware for kit-instrumented services.

Outermost first, as they stack:

1. :class:`CorrelationMiddleware`: correlation id, W3C trace context, the SERVER span;
2. :class:`MetricsMiddleware`: RED metrics by route template, and the access log;
3. :class:`LoadSheddingMiddleware`: 503 beyond a number of requests in flight;
4. :class:`BodyTimeoutMiddleware`: 408 for request bodies that arrive too slowly;
5. :class:`BodySizeLimitMiddleware`: 413 for oversized request bodies;
6. :class:`~stockflow_kit.http.problems.ProblemMiddleware`: exceptions become problems.

:func:`stockflow_kit.http.instrument` installs 1-5 as one layer, :class:`KitMiddleware`
(the same answers, metrics and lines, for fewer calls per request), then 6. The five
classes are for wiring the pieces by hand.

Each is plain ASGI (no ``BaseHTTPMiddleware``): it wraps ``receive`` and ``send`` and runs
the application in the same task, so context variables bound here are visible to handlers
and log lines. :func:`metrics_app`, :func:`metrics_endpoint` and :func:`metrics_route` serve
``GET /metrics``.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._access import CLIENT_CLOSED, DEFAULT_QUIET_PATHS, MetricsMiddleware
from stockflow_kit.http._exposition import metrics_app, metrics_endpoint, metrics_route
from stockflow_kit.http._limits import (
    BodySizeLimitMiddleware,
    BodyTimeoutMiddleware,
    LoadSheddingMiddleware,
)
from stockflow_kit.http._request import (
    HEADER_NAME,
    SCOPE_KEY,
    TRACEPARENT,
    ContextKey,
    RequestTracing,
    correlation_id_for,
    finish_span,
    with_correlation_header,
)
from stockflow_kit.http._routes import UNMATCHED
from stockflow_kit.http._server import KitMiddleware
from stockflow_kit.observability.correlation import bind_correlation

__all__ = [
    "CLIENT_CLOSED",
    "DEFAULT_QUIET_PATHS",
    "UNMATCHED",
    "BodySizeLimitMiddleware",
    "BodyTimeoutMiddleware",
    "CorrelationMiddleware",
    "KitMiddleware",
    "LoadSheddingMiddleware",
    "MetricsMiddleware",
    "metrics_app",
    "metrics_endpoint",
    "metrics_route",
]


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
        self._service = None if service is None else ContextKey("service", service)
        self._tracing = RequestTracing(tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        incoming: bytes | None = None
        traceparent = False
        for name, value in scope["headers"]:
            if name == HEADER_NAME:
                if incoming is None:
                    incoming = value
            elif name == TRACEPARENT:
                traceparent = True
        correlation_id = correlation_id_for(incoming)
        scope[SCOPE_KEY] = correlation_id
        root_path = str(scope.get("root_path", ""))
        span, owned = self._tracing.span_for(scope, traceparent=traceparent)
        status: int | None = None
        header = (HEADER_NAME, correlation_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = with_correlation_header(message, header)
            await send(message)

        error: BaseException | None = None
        token = None if self._service is None else self._service.bind()
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
                            finish_span(
                                span, scope, root_path=root_path, status=status, error=error
                            )
        finally:
            if token is not None and self._service is not None:
                self._service.reset(token)
