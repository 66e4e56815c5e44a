"""Metrics, spans and log lines shared by every bus backend and the consumer runner.

Backends call these so that all of them report the same names:

* ``messaging_messages_total{topic,subscription,outcome}``: outcomes ``published``,
  ``acked``, ``nakked``, ``redelivered``, ``dead_lettered``, ``duplicate_skipped``
  (``subscription`` is ``""`` for publish-side counts: dropped duplicate publishes; an inbox
  counts the duplicates it skips under its own name). ``acked`` and ``nakked`` are counted
  by the backend's ``ack``/``nak``, once per delivery and only when the backend recorded it;
  the consumer runner naks through the bus and adds no count of its own (the contract suite
  checks the delta of one nak);
* ``messaging_batch_size{subscription}`` (histogram of fetched batch sizes);
* ``messaging_handler_duration_seconds{subscription}`` (histogram, consumer runner);
* ``messaging_consumer_pending{subscription}`` and
  ``messaging_consumer_oldest_age_seconds{subscription}`` (gauges, consumer runner);
* spans ``"<topic> publish"`` (PRODUCER, injects ``traceparent`` into the message headers)
  and ``"<subscription> process"`` (CONSUMER, one per batch, linked to every producer context;
  a child of the producer when the whole batch comes from one trace, so that trace goes on);
* the log line ``messaging.dead_lettered`` (and the consumer runner's ``messaging.batch_handled``,
  one per batch, naming its ``correlation_ids``).
"""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final, Literal, TypeAlias

import structlog
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stockflow_kit.messaging.bus import (
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    DEAD_LETTER_TOPIC_HEADER,
    ConsumerLag,
    Delivery,
)
from stockflow_kit.observability.metrics import counter, gauge, histogram
from stockflow_kit.observability.tracing import TRACEPARENT_HEADER as TRACEPARENT
from stockflow_kit.observability.tracing import current_traceparent

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "BusMetrics",
    "Carriers",
    "Outcome",
    "bus_metrics",
    "consume_span",
    "dead_letter_headers",
    "log_dead_lettered",
    "publish_span",
    "trace_causes",
]

Outcome: TypeAlias = Literal[
    "published", "acked", "nakked", "redelivered", "dead_lettered", "duplicate_skipped"
]
"""The ``outcome`` label values of ``messaging_messages_total``."""

BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Buckets of ``messaging_batch_size``."""

_TRACER_NAME: Final = "stockflow_kit.messaging"
_log = structlog.get_logger(_TRACER_NAME)


class BusMetrics:
    """The messaging instruments of one registry (create with :func:`bus_metrics`).

    Args:
        registry: Where the instruments live; the process-wide default when ``None``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.messages: Counter = counter(
            "messaging_messages",
            "Messages by topic, subscription and outcome.",
            ("topic", "subscription", "outcome"),
            registry=registry,
        )
        self.batch_size: Histogram = histogram(
            "messaging_batch_size",
            "Deliveries per fetched batch.",
            ("subscription",),
            registry=registry,
            buckets=BATCH_SIZE_BUCKETS,
        )
        self.handler_duration: Histogram = histogram(
            "messaging_handler_duration_seconds",
            "Time a consumer's handler took for one batch.",
            ("subscription",),
            registry=registry,
        )
        self.pending: Gauge = gauge(
            "messaging_consumer_pending",
            "Messages of the subscription's topic not yet acked.",
            ("subscription",),
            registry=registry,
        )
        self.oldest_age: Gauge = gauge(
            "messaging_consumer_oldest_age_seconds",
            "Age of the oldest message not yet acked by the subscription.",
            ("subscription",),
            registry=registry,
        )

    def count(self, topic: str, subscription: str, outcome: Outcome, amount: int = 1) -> None:
        """Add *amount* to ``messaging_messages_total`` for one label set."""
        if amount:
            self.messages.labels(topic, subscription, outcome).inc(amount)

    def count_deliveries(
        self, deliveries: Iterable[Delivery], subscription: str, outcome: Outcome
    ) -> None:
        """Count *deliveries* under *outcome*, one increment per distinct topic."""
        for topic, amount in _Tally(d.topic for d in deliveries).items():
            self.messages.labels(topic, subscription, outcome).inc(amount)

    def count_fetched(self, deliveries: Sequence[Delivery], subscription: str) -> None:
        """Record the batch size and count the redeliveries among *deliveries*."""
        self.batch_size.labels(subscription).observe(len(deliveries))
        self.count_deliveries(
            (d for d in deliveries if d.delivery_count > 1), subscription, "redelivered"
        )

    def record_lag(self, subscription: str, lag: ConsumerLag) -> None:
        """Set the two lag gauges of *subscription*."""
        self.pending.labels(subscription).set(lag.pending)
        self.oldest_age.labels(subscription).set(lag.oldest_age_seconds)


def bus_metrics(registry: CollectorRegistry | None = None) -> BusMetrics:
    """Return the messaging instruments of *registry* (the default registry when ``None``).

    Instruments are created once per registry (:mod:`stockflow_kit.observability.metrics`),
    so calling this from several buses is cheap and safe.
    """
    return BusMetrics(registry)


class Carriers:
    """The headers of each message of one publish (what :func:`publish_span` yields).

    ``shared`` is the caller's headers plus the publish span's trace context: every message's,
    unless the batch's causes are in several traces; then each message carries its own cause
    (:meth:`of`).
    """

    __slots__ = ("each", "shared")

    def __init__(self, shared: dict[str, str], each: list[dict[str, str]] | None = None) -> None:
        self.shared = shared
        self.each = each

    def of(self, index: int) -> dict[str, str]:
        """The headers of message *index* of the batch."""
        each = self.each
        return self.shared if each is None else each[index]


def _span_context(traceparent: str) -> trace.SpanContext:
    return trace.get_current_span(propagate.extract({TRACEPARENT: traceparent})).get_span_context()


def _of_causes(
    causes: Sequence[str | None] | None,
) -> tuple[Context | None, list[trace.Link], bool]:
    """The publish span's parent, its links, and whether the causes span several traces."""
    if not causes:
        return None, [], False
    distinct = {c for c in causes if c is not None}
    if not distinct:  # the common case on a hot path without tracing: nothing to do
        return None, [], False
    contexts = [c for c in map(_span_context, distinct) if c.is_valid]
    if not contexts:
        return None, [], False
    links = [trace.Link(c) for c in contexts]
    if len({c.trace_id for c in contexts}) == 1:
        return trace.set_span_in_context(trace.NonRecordingSpan(contexts[0])), links, False
    return None, links, True


@contextmanager
def publish_span(
    topic: str,
    count: int,
    headers: Mapping[str, str] | None,
    causes: Sequence[str | None] | None = None,
) -> Iterator[Carriers]:
    """Open a PRODUCER span for publishing *count* messages to *topic*.

    Args:
        causes: Per message, the ``traceparent`` of the work that caused it (stored with it
            in an outbox or an event log), or ``None``. When they are all in one trace the
            span continues that trace (a child of the first); when they span several it is
            linked to each, and each message carries its own cause, so every message's
            consumers continue the trace of what caused it. Without causes the span is a
            child of the current context.

    Yields:
        The messages' headers (:class:`Carriers`): *headers* plus the trace context; store
        them with the messages.
    """
    parent, links, several = _of_causes(causes)
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        f"{topic} publish",
        context=parent,
        kind=trace.SpanKind.PRODUCER,
        links=links,
        attributes={
            "messaging.system": "stockflow",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": count,
        },
    ):
        carrier = dict(headers or {})
        propagate.inject(carrier)
        each = None
        if several:
            assert causes is not None
            base = dict(headers or {})
            each = [carrier if c is None else {**base, TRACEPARENT: c} for c in causes]
        yield Carriers(carrier, each)


def trace_causes(deliveries: Sequence[Delivery]) -> list[str | None]:
    """Per delivery, the ``traceparent`` to store with what handling it writes.

    Call it inside the handler (in the consumer's ``"<subscription> process"`` span): a
    delivery in the trace that span continues gets the span's context, so what it causes
    is published as that span's child; a delivery of another trace (a batch mixing traces)
    gets its own producer's context. ``None`` where a delivery carries no trace context.
    """
    here = current_traceparent()
    trace_hex = here[3:35] if here is not None else None
    causes: list[str | None] = []
    for delivery in deliveries:
        parent = delivery.headers.get(TRACEPARENT)
        if parent is not None and here is not None and parent[3:35] == trace_hex:
            causes.append(here)
        else:
            causes.append(parent)
    return causes


@contextmanager
def consume_span(
    subscription: str,
    deliveries: Sequence[Delivery],
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[trace.Span]:
    """Open a CONSUMER span for processing one batch, linked to each distinct producer context.

    Args:
        subscription: The durable name (the span is ``"<subscription> process"``).
        deliveries: The batch; each distinct ``traceparent`` among them becomes a link.
        tracer_provider: Where the span goes; the global provider when ``None``.

    Yields:
        The span (record an exception on it, or let it propagate).
    """
    links: list[trace.Link] = []
    seen: set[str] = set()
    for delivery in deliveries:
        parent = delivery.headers.get(TRACEPARENT)
        if parent is None or parent in seen:
            continue
        seen.add(parent)
        context = trace.get_current_span(propagate.extract(delivery.headers)).get_span_context()
        if context.is_valid:
            links.append(trace.Link(context))
    # A batch whose messages all come from one trace continues it (the span is a child of the
    # first producer), so one request's hops through the bus are one trace; a batch mixing
    # traces starts its own, linked to each.
    producer: Context | None = None
    if links and len({link.context.trace_id for link in links}) == 1:
        producer = trace.set_span_in_context(trace.NonRecordingSpan(links[0].context))
    tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
    with tracer.start_as_current_span(
        f"{subscription} process",
        context=producer,
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "stockflow",
            "messaging.consumer.group.name": subscription,
            "messaging.batch.message_count": len(deliveries),
        },
    ) as span:
        yield span


def dead_letter_headers(
    headers: Mapping[str, str], *, topic: str, subscription: str, delivery_count: int, reason: str
) -> dict[str, str]:
    """Return *headers* plus the four dead-letter headers of :mod:`~stockflow_kit.messaging.bus`."""
    return {
        **headers,
        DEAD_LETTER_TOPIC_HEADER: topic,
        DEAD_LETTER_SUBSCRIPTION_HEADER: subscription,
        DEAD_LETTER_DELIVERY_COUNT_HEADER: str(delivery_count),
        DEAD_LETTER_REASON_HEADER: reason,
    }


def log_dead_lettered(
    metrics: BusMetrics,
    *,
    topic: str,
    subscription: str,
    message_id: str,
    delivery_count: int,
    reason: str,
) -> None:
    """Count one dead-lettered message and write the ``messaging.dead_lettered`` log line."""
    metrics.count(topic, subscription, "dead_lettered")
    _log.warning(
        "messaging.dead_lettered",
        topic=topic,
        subscription=subscription,
        message_id=message_id,
        delivery_count=delivery_count,
        reason=reason,
    )
