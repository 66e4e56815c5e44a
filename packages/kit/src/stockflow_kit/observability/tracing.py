"""OpenTelemetry tracing: one setup per process, and W3C trace context in header mappings.

:func:`configure_tracing` installs the process-wide :class:`~opentelemetry.sdk.trace.TracerProvider`
(call it from a composition root, never at import time). The header helpers move the W3C
``traceparent`` / ``tracestate`` pair between the current OpenTelemetry context and a plain
mapping of headers, so the HTTP middleware, the HTTP client and message envelopes all
propagate traces the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

__all__ = [
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "configure_tracing",
    "current_trace_ids",
    "current_traceparent",
    "extract_trace_context",
    "inject_trace_headers",
    "otlp_traces_url",
]

TRACEPARENT_HEADER = "traceparent"
"""The W3C Trace Context header naming the parent span (``00-<trace id>-<span id>-<flags>``)."""

TRACESTATE_HEADER = "tracestate"
"""The W3C Trace Context header carrying vendor-specific trace state."""

_OTLP_TRACES_PATH = "/v1/traces"
_lock = threading.Lock()


def configure_tracing(
    service_name: str,
    *,
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Install the process-wide tracer provider, once, when spans have somewhere to go.

    The provider's resource carries ``service.name``. Spans go to an OTLP/HTTP collector
    through a :class:`~opentelemetry.sdk.trace.export.BatchSpanProcessor` when *otlp_endpoint*
    is given, and to *exporter* through a
    :class:`~opentelemetry.sdk.trace.export.SimpleSpanProcessor` when that is given (an
    ``InMemorySpanExporter`` in tests).

    With neither, nothing is installed and ``None`` is returned: a span nobody exports
    would cost every request its creation (in the kit's middleware and in FastAPI's native
    telemetry, which turns itself on with a provider) for nothing. Log lines then carry
    ``correlation_id`` always, and ``trace_id``/``span_id`` when the caller sent a
    ``traceparent``, whose context still flows through to outgoing calls.

    OpenTelemetry allows one global provider per process, so a second call (from this
    function or from anyone else who installed an SDK provider) changes nothing and returns
    the provider already installed.

    Args:
        service_name: The ``service.name`` resource attribute.
        otlp_endpoint: Base URL of an OTLP/HTTP collector, such as ``http://127.0.0.1:4318``;
            ``/v1/traces`` is appended unless the URL already ends with it. ``None`` (the
            default) exports nothing over the network.
        exporter: An extra exporter, called synchronously as each span ends. ``None`` by
            default.

    Returns:
        The global tracer provider, or ``None`` when there is none to install.
    """
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current
        if otlp_endpoint is None and exporter is None:
            return None
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        if otlp_endpoint is not None:
            # Imported here: the exporter pulls in requests and protobuf, which a process
            # that never exports should not pay for.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=otlp_traces_url(otlp_endpoint))
            provider.add_span_processor(BatchSpanProcessor(otlp))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        return provider


def otlp_traces_url(endpoint: str) -> str:
    """Return the OTLP/HTTP traces URL for a collector base URL (or a full traces URL)."""
    base = endpoint.rstrip("/")
    return base if base.endswith(_OTLP_TRACES_PATH) else base + _OTLP_TRACES_PATH


def inject_trace_headers(
    headers: MutableMapping[str, str], *, context: Context | None = None
) -> MutableMapping[str, str]:
    """Write the W3C trace context of *context* into *headers*.

    Uses the globally configured propagator (by default W3C ``traceparent``/``tracestate``
    plus ``baggage``). Nothing is written when there is no valid span in *context*.

    Args:
        headers: Any mutable mapping of header names to values, such as a ``dict`` of message
            headers or an :class:`httpx.Headers`; modified in place.
        context: The context to propagate; the current one when ``None`` (the default).

    Returns:
        *headers*, for chaining.
    """
    propagate.inject(headers, context=context)
    return headers


def extract_trace_context(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> Context:
    """Read the W3C trace context from *headers* into a new OpenTelemetry context.

    Header names are matched case-insensitively. A missing or malformed ``traceparent``
    gives a context without a parent span, so a span started in it begins a new trace.

    Args:
        headers: A mapping of header names to values, or ``(name, value)`` pairs. With
            repeated names, the first value wins.

    Returns:
        A context to pass as ``context=`` when starting a span.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for name, value in pairs:
        carrier.setdefault(name.lower(), value)
    return propagate.extract(carrier)


def current_trace_ids(context: Context | None = None) -> dict[str, str]:
    """Return ``{"trace_id": …, "span_id": …}`` of the span current in *context*.

    The ids are lowercase hex (32 and 16 digits), as in ``traceparent``. The dictionary is
    empty when there is no valid span, so it can be merged into log fields unconditionally.

    Args:
        context: Where to look; the current context when ``None`` (the default).
    """
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(span_context.trace_id),
        "span_id": trace.format_span_id(span_context.span_id),
    }


def current_traceparent(context: Context | None = None) -> str | None:
    """Return the W3C ``traceparent`` of the span current in *context*, or ``None``.

    What a durable record (an outbox row, an event in an event log) keeps so that the message
    published from it later continues the trace of the work that wrote it (see the ``causes``
    of :meth:`stockflow_kit.messaging.Bus.publish`). ``None`` when there is no valid span.

    Args:
        context: Where to look; the current context when ``None`` (the default).
    """
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{span_context.trace_flags:02x}"
    )
