"""Telemetry of :class:`~stockflow_kit.http.client.ResilientClient`: RED metrics and CLIENT spans.

Both are per *attempt*, as OpenTelemetry's ``http.client.request.duration`` is: a call that
was retried twice is three requests to the downstream, and its load is what they measure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import httpx
from opentelemetry import trace
from opentelemetry.trace import (
    ProxyTracerProvider,
    Span,
    SpanKind,
    StatusCode,
    Tracer,
    TracerProvider,
)
from prometheus_client import CollectorRegistry, Counter, Histogram

from stockflow_kit.http._client_errors import (
    DownstreamStatusError,
    DownstreamTimeoutError,
    DownstreamUnavailableError,
)
from stockflow_kit.observability.metrics import counter, histogram
from stockflow_kit.observability.tracing import inject_trace_headers

__all__ = [
    "ClientTracer",
    "HttpClientMetrics",
    "client_span",
    "http_client_metrics",
    "outcome_labels",
    "record_response",
]

TRACER_NAME: Final = "stockflow_kit.http.client"


class ClientTracer:
    """The tracer of the CLIENT spans, and whether a span of it would record anything.

    Without a provider of the client's own or a global one (the global provider can be set
    once only, so once it is, that is final), no span is started: the no-op span's
    attributes (the URL copied and formatted) and its context switch are skipped, and the
    caller's trace context is forwarded as it is, as a non-recording span would forward it.
    """

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.tracer: Tracer = trace.get_tracer(TRACER_NAME, tracer_provider=provider)
        self._records = provider is not None

    @property
    def records(self) -> bool:
        if not self._records:
            self._records = not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
        return self._records


@dataclass(frozen=True)
class HttpClientMetrics:
    """The client-side RED instruments, one sample per attempt.

    Attributes:
        requests: ``http_client_requests_total{downstream,method,route,status,error}``.
            An attempt that got an answer has ``status`` (``"503"``) and an empty ``error``;
            one that did not has an empty ``status`` and ``error`` set to ``timeout``,
            ``connect_error``, ``transport_error``, ``circuit_open`` or ``bulkhead_full``.
            ``route`` is the template the caller passed (``/inventory/{sku}``) or empty.
        duration: ``http_client_request_duration_seconds{downstream,method}``, for attempts
            that were sent (refusals by our own breaker or bulkhead are not timed).
    """

    requests: Counter
    duration: Histogram


def http_client_metrics(registry: CollectorRegistry | None = None) -> HttpClientMetrics:
    """Return the HTTP client instruments of *registry*, creating them on first use."""
    return HttpClientMetrics(
        requests=counter(
            "http_client_requests",
            "HTTP requests sent to downstreams (one per attempt), by outcome.",
            ("downstream", "method", "route", "status", "error"),
            registry=registry,
        ),
        duration=histogram(
            "http_client_request_duration_seconds",
            "Time from sending an HTTP request to a downstream to its full response.",
            ("downstream", "method"),
            registry=registry,
        ),
    )


def outcome_labels(outcome: httpx.Response | Exception) -> tuple[str, str]:
    """Return the ``(status, error)`` label values for a response or a client exception."""
    if isinstance(outcome, httpx.Response):
        return str(outcome.status_code), ""
    if isinstance(outcome, DownstreamStatusError):
        return str(outcome.status), ""
    if isinstance(outcome, DownstreamUnavailableError):
        return "", outcome.reason
    if isinstance(outcome, DownstreamTimeoutError):
        return "", "timeout"
    return "", "transport_error"


@contextmanager
def client_span(
    tracer: ClientTracer,
    request: httpx.Request,
    *,
    downstream: str,
    route: str | None,
    attempt: int,
) -> Iterator[Span]:
    """Start a CLIENT span for one attempt and write its trace context into *request*.

    Without a configured tracer provider the span is the current (non-recording) one and
    none is started (:class:`ClientTracer`), so the caller's ``traceparent`` is forwarded
    unchanged. Exceptions leaving the block mark the span as an error; call
    :func:`record_response` for the answer.
    """
    if not tracer.records:
        inject_trace_headers(request.headers)
        yield trace.INVALID_SPAN  # records nothing (never the caller's own span)
        return
    method = request.method
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "server.address": request.url.host,
        "url.full": str(request.url.copy_with(query=None, fragment=None)),
        "peer.service": downstream,
    }
    if request.url.port is not None:
        attributes["server.port"] = request.url.port
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    if route is not None:
        attributes["url.template"] = route
    span = tracer.tracer.start_span(
        method if route is None else f"{method} {route}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
    )
    inject_trace_headers(request.headers, context=trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        span.record_exception(exc)
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(StatusCode.ERROR)
        raise
    finally:
        span.end()


def record_response(span: Span, response: httpx.Response) -> None:
    """Put the status of *response* on *span*; a 4xx or 5xx marks a CLIENT span as an error."""
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        span.set_attribute("error.type", str(response.status_code))
        span.set_status(StatusCode.ERROR)
