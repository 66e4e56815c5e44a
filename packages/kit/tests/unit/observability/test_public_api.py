import stockflow_kit.observability


def test_the_public_api_of_observability_is_pinned() -> None:
    assert sorted(stockflow_kit.observability.__all__) == sorted(
        [
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
    )
    for name in stockflow_kit.observability.__all__:
        assert hasattr(stockflow_kit.observability, name)
