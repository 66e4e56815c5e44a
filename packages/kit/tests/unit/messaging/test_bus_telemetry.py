"""Spans and counts shared by every backend: producer context in headers, linked consumer spans."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging import Consumer, Delivery, InMemoryBus, trace_causes
from stockflow_kit.messaging.testing import make_envelopes
from stockflow_kit.observability import current_traceparent


async def test_a_batch_span_links_every_producer_of_the_batch() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    producers = []
    for n in (1, 2):
        with tracer.start_as_current_span(f"request {n}") as span:
            await bus.publish("orders.events", make_envelopes(1, start=n))
            producers.append(span.get_span_context().trace_id)
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        handled.set()

    consumer = Consumer(
        await bus.subscribe("orders.events", "inventory"),
        handle,
        max_wait=0.05,
        tracer_provider=provider,
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(handled.wait(), 2)
    await consumer.stop()
    await task
    await bus.close()

    [span] = [s for s in exporter.get_finished_spans() if s.name == "inventory process"]
    assert span.kind is trace.SpanKind.CONSUMER
    assert [link.context.trace_id for link in span.links] == producers
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 2
    assert span.parent is None  # two traces: a trace of its own, linked to both
    assert span.context.trace_id not in producers


async def test_a_batch_from_one_trace_continues_that_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    with tracer.start_as_current_span("request") as request:
        for n in (1, 2):
            with tracer.start_as_current_span(f"step {n}"):
                await bus.publish("orders.events", make_envelopes(1, start=n))
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        handled.set()

    consumer = Consumer(
        await bus.subscribe("orders.events", "inventory"),
        handle,
        max_wait=0.05,
        tracer_provider=provider,
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(handled.wait(), 2)
    await consumer.stop()
    await task
    await bus.close()

    [span] = [s for s in exporter.get_finished_spans() if s.name == "inventory process"]
    assert span.context.trace_id == request.get_span_context().trace_id
    assert span.parent is not None
    assert len(span.links) == 2


async def test_publishing_counts_stored_messages_and_dropped_duplicates() -> None:
    registry = CollectorRegistry()
    bus = InMemoryBus(registry=registry)
    await bus.start()
    envelopes = make_envelopes(3)
    await bus.publish("orders.events", envelopes)
    await bus.publish("orders.events", envelopes[:2])
    await bus.close()

    def count(outcome: str) -> float | None:
        labels = {"topic": "orders.events", "subscription": "", "outcome": outcome}
        return registry.get_sample_value("messaging_messages_total", labels)

    assert (count("published"), count("duplicate_skipped")) == (3, 2)


async def test_each_handled_batch_is_one_line_naming_its_correlation_ids() -> None:
    from structlog.testing import capture_logs

    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    envelopes = make_envelopes(3)
    await bus.publish("orders.events", envelopes)
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        handled.set()

    consumer = Consumer(await bus.subscribe("orders.events", "inventory"), handle, max_wait=0.05)
    with capture_logs() as logs:
        task = asyncio.create_task(consumer.run())
        await asyncio.wait_for(handled.wait(), 2)
        await consumer.stop()
        await task
    await bus.close()

    [line] = [entry for entry in logs if entry["event"] == "messaging.batch_handled"]
    ids = list(dict.fromkeys(e.correlation_id for e in envelopes))
    assert line["correlation_ids"] == ids
    assert line["messages"] == 3
    assert line["subscription"] == "inventory"
    assert ("correlation_id" in line) == (len(ids) == 1)


async def test_a_big_batch_names_its_first_ids_and_counts_the_rest() -> None:
    from structlog.testing import capture_logs

    from stockflow_kit.messaging.consumer import MAX_LOGGED_CORRELATION_IDS

    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    envelopes = make_envelopes(MAX_LOGGED_CORRELATION_IDS + 30)
    await bus.publish("orders.events", envelopes)
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        handled.set()

    consumer = Consumer(await bus.subscribe("orders.events", "inventory"), handle, max_wait=0.05)
    with capture_logs() as logs:
        task = asyncio.create_task(consumer.run())
        await asyncio.wait_for(handled.wait(), 2)
        await consumer.stop()
        await task
    await bus.close()

    [line] = [entry for entry in logs if entry["event"] == "messaging.batch_handled"]
    ids = list(dict.fromkeys(e.correlation_id for e in envelopes))
    assert len(ids) == MAX_LOGGED_CORRELATION_IDS + 30  # one per envelope
    assert line["messages"] == len(envelopes)
    assert line["correlation_ids"] == ids[:MAX_LOGGED_CORRELATION_IDS]
    assert line["correlation_ids_omitted"] == 30


async def _causes_seen_by_the_handler(
    provider: TracerProvider, publish: Sequence[tuple[str, int]]
) -> tuple[list[str | None], list[Delivery], str | None]:
    """Publish one envelope per (span name, n) under its own root span, consume them in one
    batch, and return what ``trace_causes`` gave the handler, the batch, and the handler's span."""
    tracer = provider.get_tracer("test")
    bus = InMemoryBus(registry=CollectorRegistry())
    await bus.start()
    for name, n in publish:
        with tracer.start_as_current_span(name):
            await bus.publish("orders.events", make_envelopes(1, start=n))
    seen: list[tuple[list[str | None], list[Delivery], str | None]] = []
    handled = asyncio.Event()

    async def handle(batch: Sequence[Delivery]) -> None:
        seen.append((trace_causes(batch), list(batch), current_traceparent()))
        handled.set()

    consumer = Consumer(
        await bus.subscribe("orders.events", "inventory"),
        handle,
        max_wait=0.05,
        batch_size=len(publish),
        tracer_provider=provider,
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(handled.wait(), 2)
    await consumer.stop()
    await task
    await bus.close()
    [(causes, batch, here)] = seen
    assert len(batch) == len(publish), "one batch of all expected"
    return causes, batch, here


async def test_trace_causes_name_the_consumer_span_when_it_continues_the_trace() -> None:
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("request"):
        causes, _, here = await _causes_seen_by_the_handler(provider, [("step", 1), ("step", 2)])
    assert here is not None
    assert causes == [here, here]  # what the handler writes is published as its span's child


async def test_trace_causes_keep_each_producer_when_the_batch_mixes_traces() -> None:
    provider = TracerProvider()
    causes, batch, here = await _causes_seen_by_the_handler(provider, [("a", 1), ("b", 2)])
    assert causes == [d.headers["traceparent"] for d in batch]
    assert here not in causes
    assert len({c.split("-")[1] for c in causes if c}) == 2
