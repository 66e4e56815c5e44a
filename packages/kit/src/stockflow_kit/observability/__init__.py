"""Observability: structured logs, correlation ids, Prometheus metrics and OpenTelemetry tracing.

Nothing is configured on import. A composition root calls :func:`configure_logging` and
:func:`configure_tracing` once; the HTTP middleware and the message bus then bind ids and
record metrics on their own.
"""

from stockflow_kit.observability.correlation import (
    CAUSATION_HEADER,
    CORRELATION_HEADER,
    bind_correlation,
    get_causation_id,
    get_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
)
from stockflow_kit.observability.logs import (
    REDACTED,
    SENSITIVE_KEYS,
    add_correlation_ids,
    add_trace_ids,
    configure_logging,
    is_sensitive_key,
    redact_secrets,
)
from stockflow_kit.observability.metrics import (
    DEFAULT_LATENCY_BUCKETS,
    HttpServerMetrics,
    counter,
    gauge,
    histogram,
    http_server_metrics,
)
from stockflow_kit.observability.tracing import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    configure_tracing,
    current_trace_ids,
    current_traceparent,
    extract_trace_context,
    inject_trace_headers,
    otlp_traces_url,
)

__all__ = [
    "CAUSATION_HEADER",
    "CORRELATION_HEADER",
    "DEFAULT_LATENCY_BUCKETS",
    "REDACTED",
    "SENSITIVE_KEYS",
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "HttpServerMetrics",
    "add_correlation_ids",
    "add_trace_ids",
    "bind_correlation",
    "configure_logging",
    "configure_tracing",
    "counter",
    "current_trace_ids",
    "current_traceparent",
    "extract_trace_context",
    "gauge",
    "get_causation_id",
    "get_correlation_id",
    "histogram",
    "http_server_metrics",
    "inject_trace_headers",
    "is_sensitive_key",
    "is_valid_correlation_id",
    "new_correlation_id",
    "otlp_traces_url",
    "redact_secrets",
]
