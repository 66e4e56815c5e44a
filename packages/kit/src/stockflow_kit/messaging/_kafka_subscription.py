"""The durable subscription of :class:`~stockflow_kit.messaging.kafka.KafkaBus`: a consumer group.

Fetch has its :class:`~._kafka_reader.KafkaReader` pull records of the assigned partitions
into per-partition bookkeeping (:mod:`._kafka_partitions`), hands out deliveries, redelivers
what passed ``ack_wait`` or was nakked, and dead-letters what is past ``max_deliver``; ack
commits the group's offsets (see the :mod:`~stockflow_kit.messaging.kafka` docstring).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from aiokafka.errors import KafkaError

from stockflow_kit.messaging._kafka_partitions import PartitionState, Pending
from stockflow_kit.messaging._kafka_reader import KafkaReader
from stockflow_kit.messaging.bus import (
    ACK_WAIT_EXPIRED_REASON,
    AckError,
    BusClosedError,
    ConsumerConfig,
    ConsumerLag,
    Delivery,
    MessagingError,
)

if TYPE_CHECKING:
    from stockflow_kit.messaging.kafka import KafkaBus

__all__ = ["KafkaSubscription"]

_LAG_PEEK_SECONDS: Final = 0.5
"""How long :meth:`KafkaSubscription.lag` waits for a record to read the oldest age from."""


class KafkaSubscription:
    """A durable subscription of a :class:`KafkaBus` (made by ``subscribe``).

    Args:
        bus: The bus.
        name: The durable name.
        config: Redelivery settings.
        reader: Its partitions and records.
    """

    def __init__(
        self, bus: KafkaBus, name: str, config: ConsumerConfig, reader: KafkaReader
    ) -> None:
        self._bus, self._name, self._config, self._reader = bus, name, config, reader
        self._closed = False

    @property
    def name(self) -> str:
        """The durable name."""
        return self._name

    def _check(self) -> None:
        if self._closed:
            raise BusClosedError(f"subscription {self._name!r} was closed")
        self._bus._producer()

    # ------------------------------------------------------------------ fetch
    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        """Hand out up to *max_messages*: redeliveries due first, then new records.

        Returns ``[]`` when nothing arrived within *max_wait*.

        Raises:
            BusClosedError: when the subscription or the bus was closed.
            MessagingError: when the broker cannot be read.
        """
        self._check()
        deadline = time.monotonic() + max_wait
        while True:
            now = time.monotonic()
            batch = self._due(now, max_messages)
            if len(batch) < max_messages:
                wake = min([deadline, *(p.due for p in self._reader.open() if p.due > now)])
                wait = 0.0 if batch else max(0.0, wake - now)
                batch.extend(await self._reader.pull(max_messages - len(batch), wait))
            deliveries = await self._hand_out(batch)
            if deliveries or time.monotonic() >= deadline:
                break
        if deliveries:
            await self._reader.mark_delivered()
            self._bus.metrics.count_fetched(deliveries, self._name)
        return deliveries

    def _due(self, now: float, limit: int) -> list[Pending]:
        due: list[Pending] = []
        for pending in self._reader.open():
            if len(due) >= limit:
                break
            if pending.due <= now:
                due.append(pending)
        return due

    async def _hand_out(self, batch: Sequence[Pending]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        deadline = time.monotonic() + self._config.ack_wait
        for pending in batch:
            if pending.count >= self._config.max_deliver:
                reason = pending.reason or ACK_WAIT_EXPIRED_REASON
                await self._dead_letter(pending, pending.count, reason)
                continue
            pending.count, pending.out, pending.due = pending.count + 1, True, deadline
            pending.state.hand_out(pending)
            deliveries.append(
                Delivery(pending.envelope, pending.topic, pending.count, pending.headers, pending)
            )
        return deliveries

    async def _dead_letter(self, pending: Pending, delivery_count: int, reason: str) -> bool:
        """Dead-letter *pending* and finish it; if that fails it comes back after ack_wait."""
        sent = await self._reader.send_dead_letter(
            pending.topic, pending, pending.headers, delivery_count, reason, pending.envelope.id
        )
        if sent:
            pending.dead_lettered = True  # later acks and naks of its deliveries: no-ops
            pending.state.finish(pending.offset)
        else:
            pending.out, pending.due = False, time.monotonic() + self._config.ack_wait
        return sent

    def _current(self, deliveries: Sequence[Delivery]) -> tuple[dict[Delivery, Pending], int]:
        """The deliveries of *deliveries* still open here (with their records), and how many
        are stale.

        A delivery whose record is finished (acked, dead-lettered) is neither: skipped. A
        stale one belongs to a partition revoked since (its new owner redelivers it).
        """
        current: dict[Delivery, Pending] = {}
        stale = 0
        for delivery in deliveries:
            pending = delivery.token
            if not isinstance(pending, Pending):
                raise TypeError(f"not a delivery of a Kafka bus: {delivery!r}")
            if pending.dead_lettered:
                continue
            if self._reader.states.get(pending.state.tp) is not pending.state:
                stale += 1
            elif pending.state.open.get(pending.offset) is pending:
                current[delivery] = pending
        return current, stale

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Finish *deliveries* and commit the group's offsets; returns once committed.

        Deliveries already finished (acked, or dead-lettered) are skipped, not counted.

        Raises:
            AckError: when the commit failed or their partitions went to another consumer
                (they are redelivered there).
        """
        self._check()
        current, stale = self._current(deliveries)
        for pending in current.values():
            pending.state.finish(pending.offset)
        await self._commit({p.state for p in current.values()})
        if stale:
            raise AckError(f"{stale} delivery(ies) belong to a reassigned partition")
        self._bus.metrics.count_deliveries(current, self._name, "acked")

    async def _commit(self, states: set[PartitionState]) -> None:
        offsets = {s.tp: p for s in states if (p := s.commit_position()) is not None}
        if not offsets:
            return
        try:
            await self._reader.consumer.commit(offsets)
        except KafkaError as err:
            raise AckError(f"commit of {self._name!r} failed: {err!r}") from err

    async def nak(
        self, deliveries: Sequence[Delivery], *, delay: float = 0.0, reason: str | None = None
    ) -> None:
        """Hand *deliveries* out again after *delay* s; keep *reason* for the dead letter.

        Deliveries already finished (acked, or dead-lettered) are skipped: they never come
        back, and are not counted.

        Raises:
            AckError: when their partitions went to another consumer (it redelivers them).
        """
        self._check()
        current, stale = self._current(deliveries)
        due = time.monotonic() + delay
        for pending in current.values():
            pending.out, pending.due = False, due
            pending.reason = reason if reason is not None else pending.reason
        if stale:
            raise AckError(f"{stale} delivery(ies) belong to a reassigned partition")
        self._bus.metrics.count_deliveries(current, self._name, "nakked")

    async def dead_letter(self, deliveries: Sequence[Delivery], *, reason: str) -> None:
        """Publish *deliveries* to the dead-letter topic at once, then ack them.

        For messages that can never succeed (malformed). Same headers as after
        ``max_deliver``, with each delivery's ``delivery_count``. Deliveries already finished
        (acked, or dead-lettered) are skipped; a later ack or nak of these is a no-op.

        Raises:
            AckError: when some could not be dead-lettered or committed (they come back), or
                belong to a partition reassigned since (its new owner redelivers them).
        """
        self._check()
        current, stale = self._current(deliveries)
        failed = 0
        for delivery, pending in current.items():
            if not await self._dead_letter(pending, delivery.delivery_count, reason):
                failed += 1
        await self._commit({p.state for p in current.values()})
        if stale or failed:
            raise AckError(f"{stale + failed} delivery(ies) were not dead-lettered")

    # ------------------------------------------------------------------ lag, close
    async def lag(self) -> ConsumerLag:
        """Records of the assigned partitions not finished, and the oldest one's age.

        Counts the records of the whole stream on the partitions this consumer owns (other
        consumers of the group report theirs). The age is read from the oldest open record,
        peeking at most 0.5 s for one when none is read yet (0.0 if none came).

        Raises:
            MessagingError: when the end offsets cannot be read.
        """
        self._check()
        states = list(self._reader.states.values())
        if not states:
            return ConsumerLag(pending=0, oldest_age_seconds=0.0)
        tps = [s.tp for s in states]
        try:
            ends = await self._reader.consumer.end_offsets(tps)
            starts = await self._reader.consumer.beginning_offsets(tps)
        except KafkaError as err:
            raise MessagingError(f"cannot read the lag of {self._name!r}: {err!r}") from err
        pending = 0
        for state in states:  # Tansu's ListOffsets can lag the fetch high watermark
            end = max(ends[state.tp], self._reader.consumer.highwater(state.tp) or 0)
            position = state.commit_position()
            pending += max(0, end - (starts[state.tp] if position is None else position))
        if pending and not any(s.open for s in states):
            for fresh in await self._reader.pull(100, _LAG_PEEK_SECONDS):
                fresh.due = 0.0  # read ahead: handed out by the next fetch, in order
        stamps = [t for s in states if (t := s.oldest_timestamp_ms()) is not None]
        if not pending or not stamps:
            return ConsumerLag(pending=pending, oldest_age_seconds=0.0)
        return ConsumerLag(
            pending=pending, oldest_age_seconds=max(time.time() - min(stamps) / 1000, 0.0)
        )

    async def close(self) -> None:
        """Leave the group; unacked deliveries go to whoever owns their partitions next."""
        if self._closed:
            return
        self._closed = True
        await self._reader.close()
