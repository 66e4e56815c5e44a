from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stockflow_kit.observability import (
    configure_tracing,
    current_trace_ids,
    extract_trace_context,
    inject_trace_headers,
    otlp_traces_url,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.usefixtures("fresh_tracing_globals")
def test_spans_go_to_the_given_exporter_with_the_service_name() -> None:
    exporter = InMemorySpanExporter()
    provider = configure_tracing("inventory", exporter=exporter)

    with trace.get_tracer("test").start_as_current_span("work"):
        pass

    assert trace.get_tracer_provider() is provider
    [span] = exporter.get_finished_spans()
    assert span.name == "work"
    assert span.resource.attributes["service.name"] == "inventory"


@pytest.mark.usefixtures("fresh_tracing_globals")
def test_a_second_configuration_returns_the_first_provider_unchanged() -> None:
    first_exporter, second_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    first = configure_tracing("inventory", exporter=first_exporter)

    second = configure_tracing("orders", exporter=second_exporter)
    with trace.get_tracer("test").start_as_current_span("work"):
        pass

    assert second is first
    assert len(first_exporter.get_finished_spans()) == 1
    assert second_exporter.get_finished_spans() == ()


@pytest.mark.usefixtures("fresh_tracing_globals")
def test_an_otlp_endpoint_gives_a_provider_without_exporting_anything_yet() -> None:
    provider = configure_tracing("inventory", otlp_endpoint="http://127.0.0.1:9/")

    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "inventory"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ],
)
def test_the_otlp_traces_path_is_appended_once(endpoint: str, url: str) -> None:
    assert otlp_traces_url(endpoint) == url


def test_injected_headers_carry_the_current_span_and_extract_back_to_it() -> None:
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("client") as span:
        headers = inject_trace_headers({"accept": "application/json"})

    context = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert headers["accept"] == "application/json"
    extracted = trace.get_current_span(extract_trace_context(headers)).get_span_context()
    assert (extracted.trace_id, extracted.span_id) == (context.trace_id, context.span_id)
    assert extracted.is_remote


def test_nothing_is_injected_without_a_span() -> None:
    assert inject_trace_headers({}) == {}


def test_an_explicit_context_is_injected_instead_of_the_current_one() -> None:
    context = extract_trace_context({"traceparent": TRACEPARENT})

    headers = inject_trace_headers({}, context=context)

    assert headers["traceparent"] == TRACEPARENT


def test_header_names_are_matched_case_insensitively_and_pairs_are_accepted() -> None:
    context = extract_trace_context([("TraceParent", TRACEPARENT), ("traceparent", "garbage")])

    assert current_trace_ids(context) == {
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
    }


def test_a_malformed_traceparent_gives_a_context_without_a_parent() -> None:
    context = extract_trace_context({"traceparent": "00-nonsense"})

    assert current_trace_ids(context) == {}


def test_there_are_no_trace_ids_outside_a_span() -> None:
    assert current_trace_ids() == {}


@pytest.mark.usefixtures("fresh_tracing_globals")
def test_without_an_exporter_no_provider_is_installed_and_spans_record_nothing() -> None:
    assert configure_tracing("inventory") is None

    with trace.get_tracer("test").start_as_current_span("work") as span:
        pass

    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    assert not span.is_recording()
    assert configure_tracing("inventory", exporter=InMemorySpanExporter()) is not None
