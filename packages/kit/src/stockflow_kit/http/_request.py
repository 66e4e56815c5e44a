"""What the correlation layer does to each request, shared by the layers that do it.

:class:`~stockflow_kit.http.CorrelationMiddleware` and :class:`~stockflow_kit.http.KitMiddleware`
both bind a correlation id, start (or continue) the SERVER span and set the id on the
response; the pieces live here so that there is one copy of each.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Final

import structlog
from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, StatusCode, TracerProvider
from starlette.datastructures import Headers
from starlette.types import Message, Scope

from stockflow_kit.http._routes import OTHER_METHOD, method_label, route_template
from stockflow_kit.observability.correlation import (
    CORRELATION_HEADER,
    is_valid_correlation_id,
    new_correlation_id,
)
from stockflow_kit.observability.tracing import extract_trace_context

TRACER_NAME: Final = "stockflow_kit.http"
SCOPE_KEY: Final = "stockflow_kit.correlation_id"
"""Set in the scope by the first layer that bound a correlation id: nested ones pass through."""
HEADER_NAME: Final = CORRELATION_HEADER.lower().encode("latin-1")
TRACEPARENT: Final = b"traceparent"


def correlation_id_for(incoming: bytes | None) -> str:
    """The request's correlation id: its ``X-Correlation-ID`` when well-formed, else a new one."""
    given = None if incoming is None else incoming.decode("latin-1")
    return given if given is not None and is_valid_correlation_id(given) else new_correlation_id()


def with_correlation_header(message: Message, header: tuple[bytes, bytes]) -> Message:
    """A copy of the ``http.response.start`` *message* whose only correlation header is *header*."""
    headers = message.get("headers", ())
    for name, _value in headers:
        if name.lower() == HEADER_NAME:  # the application set one: ours replaces it
            headers = [(k, v) for k, v in headers if k.lower() != HEADER_NAME]
            break
    return {**message, "headers": [*headers, header]}


class ContextKey:
    """One key of structlog's context variables, bound per request for a fixed value.

    What ``bound = structlog.contextvars.bind_contextvars(key=value)`` and
    ``reset_contextvars(**bound)`` do, without their per-call work: the context variable
    behind *key* is looked up once (``Token.var``), then only set and reset.
    """

    __slots__ = ("_value", "_var")

    def __init__(self, key: str, value: object) -> None:
        token = structlog.contextvars.bind_contextvars(**{key: value})[key]
        token.var.reset(token)
        self._var: ContextVar[Any] = token.var
        self._value = value

    def bind(self) -> Token[Any]:
        """Bind the value; give the token to :meth:`reset`."""
        return self._var.set(self._value)

    def reset(self, token: Token[Any]) -> None:
        """Restore what was bound before :meth:`bind`."""
        self._var.reset(token)


class RequestTracing:
    """The SERVER span of each request, or the caller's trace context when nothing records.

    Args:
        tracer_provider: Where spans go; the global provider (also one configured later)
            when ``None``.
    """

    def __init__(self, tracer_provider: TracerProvider | None) -> None:
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._tracing = tracer_provider is not None or not isinstance(
            trace.get_tracer_provider(), ProxyTracerProvider
        )

    def span_for(self, scope: Scope, *, traceparent: bool) -> tuple[Span | None, bool]:
        """The span current while *scope* is handled, and whether this layer must end it.

        An outer layer's SERVER span (FastAPI's native telemetry, Starlette's
        ``OpenTelemetryMiddleware``) is used as it is; else a span of our own is started when
        something records spans; else, when the request carries a ``traceparent``
        (*traceparent*), the caller's context, so that logs and outgoing calls carry its
        trace id; else ``None``.
        """
        outer = _outer_server_span(scope)
        if outer is not None:
            return outer, False
        if self._records_spans():
            span = self._start_span(scope, Headers(scope=scope))
            return span, span.is_recording()
        if traceparent:
            # No tracing here, but the caller's trace continues through this hop: its
            # context becomes current, for log lines and outgoing calls.
            return trace.get_current_span(extract_trace_context(Headers(scope=scope))), False
        return None, False

    def _records_spans(self) -> bool:
        # Without a tracer provider of our own or a global one, a span would record nothing:
        # none is started (the no-op tracer's work and its context switch are skipped).
        # The global provider can be set once only: once it is, that is final.
        if not self._tracing:
            self._tracing = _global_tracer_provider_set()
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


def _global_tracer_provider_set() -> bool:
    # trace.get_tracer_provider() looks OTEL_PYTHON_TRACER_PROVIDER up in os.environ on every
    # call until a provider is set: ~1 us on every request of a service that does not trace.
    # The API module's global says the same without it; RequestTracing's constructor has
    # called get_tracer_provider() once, which loads a provider named by that variable.
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # an API version without the global: the public way
        return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    return provider is not None


_UNKNOWN: Final = object()


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


def finish_span(
    span: Span, scope: Scope, *, root_path: str, status: int | None, error: BaseException | None
) -> None:
    """Name *span* by the matched route, record the status or the error, and end it."""
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
