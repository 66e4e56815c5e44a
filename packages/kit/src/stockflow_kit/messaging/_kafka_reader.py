"""What a Kafka subscription reads: its group's partitions, their records, their marks.

:class:`KafkaReader` follows the consumer group's assignment (one
:class:`~._kafka_partitions.PartitionState` per assigned partition), reads records of the
subscription's topic into that bookkeeping (dropping other topics of the stream and
re-published envelope ids), commits the ``<durable>.delivered`` marks and publishes dead
letters. :class:`~._kafka_subscription.KafkaSubscription` decides what to hand out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from stockflow_kit.messaging._kafka_config import TOPIC_HEADER
from stockflow_kit.messaging._kafka_partitions import PartitionState, Pending
from stockflow_kit.messaging._telemetry import dead_letter_headers, log_dead_lettered
from stockflow_kit.messaging.bus import MessagingError, dead_letter_topic, topic_matches
from stockflow_kit.messaging.envelope import decode_envelope

if TYPE_CHECKING:
    from stockflow_kit.messaging.kafka import KafkaBus

__all__ = ["KafkaReader"]

_log = structlog.get_logger("stockflow_kit.messaging")


class _NotDeadLetteredError(Exception):
    """An undecodable record could not be dead-lettered (logged); it is read again later."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, reader: KafkaReader) -> None:
        self._reader = reader

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        self._reader._revoked(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._reader._assigned(assigned)


class KafkaReader:
    """The partitions and records of one durable subscription.

    Args:
        bus: The bus (its producer carries dead letters).
        topic: The kit topic or ``"<stream>.>"``.
        name: The durable name.
        consumer: The group member (``AIOKafkaConsumer``).
        marker: A consumer of the ``<durable>.delivered`` group that only commits.
    """

    def __init__(self, bus: KafkaBus, topic: str, name: str, consumer: Any, marker: Any) -> None:
        self._bus, self._topic, self._name = bus, topic, name
        self.consumer, self._marker = consumer, marker
        self.states: dict[Any, PartitionState] = {}
        self._epoch = 0
        self.ready = asyncio.Event()
        """Set once the group assigned partitions (possibly none)."""

    def listener(self) -> ConsumerRebalanceListener:
        """The rebalance listener to subscribe the consumer with."""
        return _Listener(self)

    def _revoked(self, revoked: Iterable[Any]) -> None:
        for tp in revoked:  # out deliveries turn stale: their acks raise AckError
            self.states.pop(tp, None)

    async def _assigned(self, assigned: Iterable[Any]) -> None:
        self._epoch += 1
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            delivered = await self._marker.committed(tp)
            self.states[tp] = PartitionState(tp, self._epoch, committed, delivered or 0)
        self.ready.set()

    def open(self) -> Iterable[Pending]:
        """Every record read and not finished, partition by partition in offset order."""
        for state in self.states.values():
            yield from state.open.values()

    async def pull(self, limit: int, wait: float) -> list[Pending]:
        """Read up to *limit* new records of this subscription's topic into the bookkeeping."""
        try:
            records = await self.consumer.getmany(timeout_ms=int(wait * 1000), max_records=limit)
        except KafkaError as err:
            raise MessagingError(f"cannot fetch for {self._name!r}: {err!r}") from err
        fresh: list[Pending] = []
        for tp, batch in records.items():
            state = self.states.get(tp)
            if state is None:
                continue  # revoked meanwhile: the next owner reads these
            for record in batch:
                try:
                    pending = await self._take(state, record)
                except _NotDeadLetteredError:  # read it again next time, and what follows it
                    self.consumer.seek(tp, record.offset)
                    state.next_read = record.offset
                    break
                if pending is not None:
                    state.open[record.offset] = pending
                    fresh.append(pending)
        return fresh

    async def _take(self, state: PartitionState, record: Any) -> Pending | None:
        state.read(record.offset)
        headers = {key: value.decode() for key, value in record.headers or ()}
        topic = headers.pop(TOPIC_HEADER, record.topic)
        if not topic_matches(self._topic, topic):
            return None  # another topic of the stream: done for this subscription
        try:
            envelope = decode_envelope(record.value)
        except msgspec.DecodeError as err:  # no fetch could return it: dead-letter it raw now
            message_id = f"{record.topic}[{record.partition}]@{record.offset}"
            reason = f"undecodable envelope: {err}"
            if not await self.send_dead_letter(topic, record, headers, 1, reason, message_id):
                raise _NotDeadLetteredError from err
            return None
        if state.is_duplicate(envelope.id):
            self._bus.metrics.count(topic, self._name, "duplicate_skipped")
            return None
        count = state.first_count(record.offset)
        return Pending(
            state, record.offset, topic, envelope, headers, record.value, record.key,
            record.timestamp, count=count,
        )  # fmt: skip

    async def mark_delivered(self) -> None:
        """Commit, per partition, the offset below which everything was handed out."""
        marks = {s.tp: s.handed for s in self.states.values() if s.handed > s.marked}
        if not marks:
            return
        try:
            await self._marker.commit(marks)
        except KafkaError as err:  # the counts after a crash will be one lower
            _log.warning("messaging.kafka_mark_failed", subscription=self._name, error=repr(err))
            return
        for tp, offset in marks.items():
            if (state := self.states.get(tp)) is not None:
                state.marked = max(state.marked, offset)

    async def send_dead_letter(
        self,
        topic: str,
        record: Any,
        headers: dict[str, str],
        delivery_count: int,
        reason: str,
        message_id: str,
    ) -> bool:
        """Publish *record*'s value and key to the dead-letter topic; count and log it."""
        dead_headers = dead_letter_headers(
            headers,
            topic=topic,
            subscription=self._name,
            delivery_count=delivery_count,
            reason=reason,
        )
        try:
            await self._bus._send_one(
                dead_letter_topic(topic), record.value, record.key, dead_headers
            )
        except MessagingError as err:
            _log.error(
                "messaging.dead_letter_failed",
                topic=topic,
                subscription=self._name,
                message_id=message_id,
                error=repr(err),
            )
            return False
        log_dead_lettered(
            self._bus.metrics,
            topic=topic,
            subscription=self._name,
            message_id=message_id,
            delivery_count=delivery_count,
            reason=reason,
        )
        return True

    # ------------------------------------------------------------------ settle
    async def close(self) -> None:
        """Leave the group and stop the marker consumer."""
        self.states.clear()
        for consumer in (self.consumer, self._marker):
            with contextlib.suppress(KafkaError):  # gone: the group drops it after its session
                await consumer.stop()
