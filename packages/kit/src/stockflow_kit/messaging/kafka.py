"""The bus on the Kafka protocol (aiokafka): a topic per stream, consumer groups, commits.

Design:

* **Topics**: one Kafka topic per stream (``orders.events`` → Kafka topic ``orders``, the kit
  topic in the record header ``X-Stockflow-Topic``), ``partitions`` partitions, created when
  first used (cached per bus); the dead-letter topic ``deadletter`` at :meth:`KafkaBus.start`.
  Naming and URL options: :mod:`stockflow_kit.messaging._kafka_config`.
* **Publish**: the record key is the envelope's ``subject``, so one SKU's or one order's
  messages share a partition and keep their order; ``acks=all``; the idempotent producer
  when the broker has it (``idempotence=auto``), which drops the producer's own retries.
  Headers carry ``traceparent`` and ``X-Correlation-ID``. A call returns once every record
  is acknowledged, else raises :class:`PublishError` (publishing again is safe).
* **Dedupe**: the envelope id is the key. Kafka has no broker-side dedupe of re-published
  records, so each subscription drops an id it has already seen on a partition since it was
  assigned (the last :data:`~._kafka_partitions.REMEMBERED_IDS` ids), counted as
  ``duplicate_skipped``. A re-publish read by a consumer that took the partition over after
  the original was acked is delivered again: consumers stay idempotent (the kit's inbox).
* **Subscribe**: a consumer group per durable name (``enable_auto_commit=False``, from the
  earliest record); :meth:`KafkaBus.subscribe` returns once the group assigned partitions.
  Each partition has one consumer of a group at a time, which keeps per-subject order, so
  consumers of one durable share *partitions*, not the messages of one partition.
* **Ack** finishes deliveries and commits, per partition, the smallest offset still
  unfinished (:mod:`._kafka_partitions`): offsets are committed only after the effect, and a
  consumer that takes a partition over starts at the first unacked record. Redelivery of
  nakked or ``ack_wait``-expired deliveries is done by the owning consumer from memory;
  ``delivery_count`` counts exactly while one consumer owns the partition, and a record
  handed out before a takeover (marked in the ``<durable>.delivered`` group) counts as
  delivered once before, so after a crash it comes back with count 2 (not more).
* **Dead letters**: past ``max_deliver``, or at once by ``dead_letter``, the record is published
  to ``deadletter.<stream>`` (Kafka topic ``deadletter``) with the four dead-letter headers,
  then finished: a later ack or nak of its deliveries is a no-op, as is one of an acked record.

Errors: aiokafka's ``KafkaError`` tree (plus ``OSError``, ``TimeoutError``) is mapped here::

    aiokafka                                        kit
    ──────────────────────────────────────────────  ──────────────────────────────────────
    not started, or the bus closed ................ BusClosedError
    start: no broker in time, KafkaError .......... MessagingError
    publish: send/ack failed or timed out ......... PublishError
    subscribe: no assignment in time, KafkaError .. SubscribeError
    ack/nak: commit failed, partition reassigned .. AckError (the records come back)
    fetch, lag: KafkaError ........................ MessagingError
    invalid topic or durable name ................. ValueError (a bug, before any I/O)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging._kafka_config import (
    TOPIC_HEADER,
    check_durable,
    check_topic,
    parse_kafka_url,
)
from stockflow_kit.messaging._kafka_reader import KafkaReader
from stockflow_kit.messaging._kafka_subscription import KafkaSubscription
from stockflow_kit.messaging._telemetry import bus_metrics, publish_span
from stockflow_kit.messaging.bus import (
    DEAD_LETTER_PREFIX,
    BusClosedError,
    ConsumerConfig,
    MessagingError,
    PublishError,
    SubscribeError,
)
from stockflow_kit.messaging.envelope import Envelope, encode_envelope
from stockflow_kit.observability.correlation import CORRELATION_HEADER

__all__ = ["KafkaBus", "KafkaSubscription"]

_ERRORS: Final = (KafkaError, OSError, TimeoutError)
_TOPIC_EXISTS: Final = 36
_FETCH_WAIT_MS: Final = 50
_PARTITION_FETCH_BYTES: Final = 64 * 1024
# aiokafka prefetches up to these many raw bytes; decoded records take several times as much,
# so a small prefetch keeps a consumer's memory bounded under a backlog (the bus contract).
_FETCH_BYTES: Final = 4 * _PARTITION_FETCH_BYTES


class KafkaBus:
    """A :class:`~stockflow_kit.messaging.bus.Bus` on a Kafka-protocol broker.

    Args:
        url: ``kafka://host:port[,host:port][?prefix=..&partitions=..&timeout=..&
            session_timeout=..&idempotence=auto]`` (options in :mod:`._kafka_config`).
        name: The client id, shown by the broker.
        registry: Prometheus registry for the messaging metrics (default registry if ``None``).
    """

    def __init__(
        self, url: str, *, name: str = "stockflow", registry: CollectorRegistry | None = None
    ) -> None:
        self.options = parse_kafka_url(url)
        self.metrics = bus_metrics(registry)
        self._name = name
        self.idempotent = False
        """Whether the producer is idempotent (known after :meth:`start`)."""
        self._producer_client: Any = None
        self._admin: Any = None
        self._closed = False
        self._topics: set[str] = set()
        self._subscriptions: set[KafkaSubscription] = set()

    def _common(self) -> dict[str, Any]:
        timeout_ms = int(self.options.timeout * 1000)
        return {
            "bootstrap_servers": list(self.options.bootstrap),
            "client_id": self._name,
            "request_timeout_ms": max(timeout_ms, 1000),
        }

    async def start(self) -> None:
        """Connect the producer and the admin client; create the dead-letter topic.

        Raises:
            MessagingError: when no broker answers in time.
            BusClosedError: when the bus was closed.
        """
        if self._closed:
            raise BusClosedError("the Kafka bus was closed")
        if self._producer_client is not None:
            return
        admin = AIOKafkaAdminClient(**self._common())
        try:
            async with asyncio.timeout(self.options.timeout):
                await admin.start()
                self._admin = admin
                self._producer_client = await self._start_producer()
            await self._ensure_topic(self.options.kafka_topic(DEAD_LETTER_PREFIX))
        except (*_ERRORS, MessagingError) as err:
            await self.close()
            self._closed = False
            msg = f"cannot start the Kafka bus on {self.options.bootstrap}: {err!r}"
            raise MessagingError(msg) from err

    async def _start_producer(self) -> Any:
        wanted = self.options.idempotence
        for idempotent in (True, False) if wanted == "auto" else (wanted == "true",):
            producer = AIOKafkaProducer(**self._common(), acks="all", enable_idempotence=idempotent)
            try:
                await producer.start()
            except KafkaError:
                await producer.stop()
                if not idempotent or wanted != "auto":
                    raise
                continue  # e.g. Tansu: no InitProducerId
            self.idempotent = idempotent
            return producer
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Close the subscriptions, flush the producer and disconnect. Idempotent."""
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._subscriptions.clear()
        producer, admin, self._producer_client, self._admin = (
            self._producer_client, self._admin, None, None,
        )  # fmt: skip
        for client in (producer, admin):
            if client is None:
                continue
            with contextlib.suppress(*_ERRORS):  # the broker is gone: nothing left to flush
                await (client.stop() if client is producer else client.close())

    def _producer(self) -> Any:
        if self._producer_client is None:
            state = "was closed" if self._closed else "is not started"
            raise BusClosedError(f"the Kafka bus {state}")
        return self._producer_client

    async def _ensure_topic(self, kafka_topic: str) -> None:
        """Create *kafka_topic* once per bus (an existing one is fine)."""
        if kafka_topic in self._topics:
            return
        new = NewTopic(kafka_topic, self.options.partitions, self.options.replication)
        response = await self._admin.create_topics(
            [new], timeout_ms=int(self.options.timeout * 1000)
        )
        for _, code, *_ in getattr(response, "topic_errors", ()):
            if code not in (0, _TOPIC_EXISTS):
                raise MessagingError(f"cannot create Kafka topic {kafka_topic!r}: error {code}")
        self._topics.add(kafka_topic)

    async def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
        causes: Sequence[str | None] | None = None,
    ) -> None:
        """Append *envelopes* to *topic* (keyed by subject); return once all are acknowledged.

        Raises:
            PublishError: when some record was not acknowledged; publishing again is safe.
            BusClosedError: when the bus is not started or was closed.
            ValueError: for an invalid topic.
        """
        producer = self._producer()
        check_topic(topic)
        if not envelopes:
            return
        kafka_topic = self.options.kafka_topic(topic)
        with publish_span(topic, len(envelopes), headers, causes) as carriers:
            carrier = carriers.shared
            base = _record_headers(carrier, topic)
            try:
                await self._ensure_topic(kafka_topic)
                futures = []
                for index, envelope in enumerate(envelopes):
                    record_headers = base
                    if carriers.each is not None:
                        carrier = carriers.each[index]
                        record_headers = _record_headers(carrier, topic)
                    if envelope.correlation_id and CORRELATION_HEADER not in carrier:
                        correlation = (CORRELATION_HEADER, envelope.correlation_id.encode())
                        record_headers = [*record_headers, correlation]
                    key = envelope.subject.encode() if envelope.subject else None
                    payload = encode_envelope(envelope)
                    futures.append(
                        await producer.send(kafka_topic, payload, key=key, headers=record_headers)
                    )
                async with asyncio.timeout(self.options.timeout):
                    await asyncio.gather(*futures)
            except (*_ERRORS, MessagingError) as err:
                msg = f"publishing {len(envelopes)} message(s) to {topic!r} failed: {err!r}"
                raise PublishError(msg) from err
        self.metrics.count(topic, "", "published", len(envelopes))

    async def _send_one(
        self, topic: str, value: bytes, key: bytes | None, headers: Mapping[str, str]
    ) -> None:
        """Publish one raw record to kit *topic* (dead letters) and wait for its ack.

        Raises:
            MessagingError: when it was not acknowledged.
        """
        producer = self._producer()
        kafka_topic = self.options.kafka_topic(topic)
        record_headers = [(k, v.encode()) for k, v in headers.items() if k != TOPIC_HEADER]
        record_headers.append((TOPIC_HEADER, topic.encode()))
        try:
            await self._ensure_topic(kafka_topic)
            async with asyncio.timeout(self.options.timeout):
                await producer.send_and_wait(kafka_topic, value, key=key, headers=record_headers)
        except _ERRORS as err:
            raise MessagingError(f"cannot publish to {topic!r}: {err!r}") from err

    async def subscribe(
        self, topic: str, durable: str, config: ConsumerConfig | None = None
    ) -> KafkaSubscription:
        """Join the consumer group of *durable* on *topic*; return once it has partitions.

        Raises:
            SubscribeError: when the group cannot be joined in time.
            BusClosedError: when the bus is not started or was closed.
            ValueError: for an invalid topic or durable name.
        """
        self._producer()
        check_topic(topic, wildcard=True)
        check_durable(durable)
        config = config or ConsumerConfig()
        kafka_topic = self.options.kafka_topic(topic)
        session_ms = int(self.options.session_timeout * 1000)
        consumer = AIOKafkaConsumer(
            **self._common(),
            group_id=self.options.group(durable),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(100, session_ms // 4),
            rebalance_timeout_ms=session_ms,
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            max_partition_fetch_bytes=_PARTITION_FETCH_BYTES,
            fetch_max_bytes=_FETCH_BYTES,
        )
        marker = AIOKafkaConsumer(
            **self._common(),
            group_id=self.options.delivered_group(durable),
            enable_auto_commit=False,
        )
        reader = KafkaReader(self, topic, durable, consumer, marker)
        subscription = KafkaSubscription(self, durable, config, reader)
        try:
            await self._ensure_topic(kafka_topic)
            await marker.start()
            await marker.topics()  # loads the metadata partitions_for_topic reads
            partitions = sorted(marker.partitions_for_topic(kafka_topic) or ())
            tps = [TopicPartition(kafka_topic, p) for p in partitions]
            marker.assign(tps)
            marker.pause(*tps)  # it only commits: never fetch
            consumer.subscribe([kafka_topic], listener=reader.listener())
            await consumer.start()
            wait = max(self.options.timeout, self.options.session_timeout * 2)
            async with asyncio.timeout(wait):
                await reader.ready.wait()
        except (*_ERRORS, MessagingError) as err:
            await subscription.close()
            msg = f"cannot subscribe {durable!r} to {topic!r}: {err!r}"
            raise SubscribeError(msg) from err
        self._subscriptions.add(subscription)
        return subscription


def _record_headers(carrier: Mapping[str, str], topic: str) -> list[tuple[str, bytes]]:
    """A record's Kafka headers: the message's headers and the kit topic."""
    return [
        *((key, value.encode()) for key, value in carrier.items()),
        (TOPIC_HEADER, topic.encode()),
    ]
