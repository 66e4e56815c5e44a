"""The subscription side of :class:`~stockflow_kit.messaging.sqlite_log.SqliteLogBus`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import msgspec

from stockflow_kit.messaging._dead_lettered import DeadLettered
from stockflow_kit.messaging._sqlite_store import Claim, Row, SqliteStore
from stockflow_kit.messaging._telemetry import dead_letter_headers, log_dead_lettered
from stockflow_kit.messaging.bus import (
    ACK_WAIT_EXPIRED_REASON,
    DEAD_LETTER_PREFIX,
    AckError,
    ConsumerConfig,
    ConsumerLag,
    Delivery,
    MessagingError,
    dead_letter_topic,
    stream_of,
)
from stockflow_kit.messaging.envelope import decode_envelope

if TYPE_CHECKING:
    from stockflow_kit.messaging.sqlite_log import SqliteLogBus

__all__ = ["SqliteLogSubscription"]

_EXPIRY_FLOOR: Final = 0.005
"""Seconds a fetch sleeps at least before claiming a redelivery that is (about to be) due."""
_encode_headers = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


class SqliteLogSubscription:
    """A durable subscription of a :class:`SqliteLogBus`."""

    def __init__(
        self, bus: SqliteLogBus, name: str, consumer: int, pattern: str, config: ConsumerConfig
    ) -> None:
        self._bus, self._name, self._consumer = bus, name, consumer
        self._pattern, self._stream, self._config = pattern, stream_of(pattern), config
        self._dead_lettered = DeadLettered(_seq)
        # The wake generation of the last claim that found nothing, and its next redelivery:
        # until either moves, claiming again would find nothing either.
        self._quiet_since: int | None = None
        self._next_due: float | None = None

    @property
    def name(self) -> str:
        """The durable name."""
        return self._name

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        """Return up to *max_messages* deliveries, waiting at most *max_wait* s for the first.

        While nothing is there it sleeps until woken (a publish, nak or dead letter of this
        bus, a commit seen by the bus's watch of the file) or until the next in-flight
        delivery expires; it claims again only then, not on every turn.
        """
        bus = self._bus
        deadline = time.monotonic() + max_wait
        while True:
            store = bus.store()
            generation = bus.generation
            if generation != self._quiet_since or self._redelivery_due():
                claim = await self._claim(store, max_messages)
                if claim.deliveries:
                    self._quiet_since = None
                    deliveries = _deliveries(claim.deliveries)
                    bus.metrics.count_fetched(deliveries, self._name)
                    return deliveries
                self._quiet_since, self._next_due = generation, claim.next_due
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._next_due is not None:
                # a floor, so that an expiry the claim just missed cannot make it spin
                until_due = max(self._next_due - time.time(), _EXPIRY_FLOOR)
                remaining = min(remaining, until_due)
            await bus.wait(remaining)

    def _redelivery_due(self) -> bool:
        return self._next_due is not None and self._next_due <= time.time()

    async def _claim(self, store: SqliteStore, max_messages: int) -> Claim:
        try:
            claim = await self._bus.execute(
                store.claim,
                self._consumer,
                self._stream,
                self._pattern,
                limit=max_messages,
                now=time.time(),
                ack_wait=self._config.ack_wait,
                max_deliver=self._config.max_deliver,
                dead_letter=self._dead_letter_rows,
            )
        except sqlite3.Error as error:
            msg = f"fetching from {self._name!r} failed: {error}"
            raise MessagingError(msg) from error
        self._report_dead(claim.dead)
        return claim

    def _dead_letter_rows(
        self, rows: list[Row]
    ) -> list[tuple[str, str, float, bytes | None, bytes]]:
        now = time.time()
        return [
            (
                DEAD_LETTER_PREFIX,
                dead_letter_topic(topic),
                now,
                _encode_headers(
                    dead_letter_headers(
                        _decode_headers(headers) if headers else {},
                        topic=topic,
                        subscription=self._name,
                        delivery_count=deliveries,
                        reason=reason or ACK_WAIT_EXPIRED_REASON,
                    )
                ),
                body,
            )
            for _, topic, deliveries, headers, body, reason in rows
        ]

    def _report_dead(self, dead: Sequence[Row]) -> None:
        for _, topic, deliveries, _headers, body, reason in dead:
            log_dead_lettered(
                self._bus.metrics,
                topic=topic,
                subscription=self._name,
                message_id=decode_envelope(body).id,
                delivery_count=deliveries,
                reason=reason or ACK_WAIT_EXPIRED_REASON,
            )
        if dead:
            self._bus.wake()

    async def dead_letter(self, deliveries: Sequence[Delivery], *, reason: str) -> None:
        """Move *deliveries* to the dead-letter topic now, in one transaction; see the port."""
        if not deliveries:
            return
        store = self._bus.store()
        counts = {_seq(d): d.delivery_count for d in deliveries}

        def as_given(rows: list[Row]) -> list[Row]:
            return [
                (seq, topic, counts[seq], h, body, reason) for seq, topic, _, h, body, _ in rows
            ]

        try:
            moved = await self._bus.execute(
                store.dead_letter,
                self._consumer,
                list(counts),
                lambda rows: self._dead_letter_rows(as_given(rows)),
            )
        except sqlite3.Error as error:
            msg = f"dead-lettering {len(deliveries)} deliveries of {self._name!r} failed: {error}"
            raise AckError(msg) from error
        for delivery in deliveries:
            self._dead_lettered.add(delivery)
        self._report_dead(as_given(moved))

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark *deliveries* done in one transaction; dead-lettered ones are skipped."""
        deliveries = self._dead_lettered.without(deliveries)
        if not deliveries:
            return
        store = self._bus.store()
        try:
            await self._bus.execute(store.ack, self._consumer, [_seq(d) for d in deliveries])
        except sqlite3.Error as error:
            msg = f"acking {len(deliveries)} deliveries of {self._name!r} failed: {error}"
            raise AckError(msg) from error
        self._bus.metrics.count_deliveries(deliveries, self._name, "acked")

    async def nak(
        self, deliveries: Sequence[Delivery], *, delay: float = 0.0, reason: str | None = None
    ) -> None:
        """Make *deliveries* due again after *delay* seconds, remembering *reason*.

        Dead-lettered ones are skipped: they never come back.
        """
        deliveries = self._dead_lettered.without(deliveries)
        if not deliveries:
            return
        store, due = self._bus.store(), time.time() + delay
        seqs = [_seq(d) for d in deliveries]
        try:
            await self._bus.execute(store.nak, self._consumer, seqs, due, reason)
        except sqlite3.Error as error:
            msg = f"nakking {len(deliveries)} deliveries of {self._name!r} failed: {error}"
            raise AckError(msg) from error
        self._bus.metrics.count_deliveries(deliveries, self._name, "nakked")
        self._bus.wake()

    async def lag(self) -> ConsumerLag:
        """Messages not yet acked, and the age of the oldest."""
        store = self._bus.store()
        try:
            pending, oldest = await self._bus.execute(
                store.lag, self._consumer, self._stream, self._pattern
            )
        except sqlite3.Error as error:
            msg = f"reading the lag of {self._name!r} failed: {error}"
            raise MessagingError(msg) from error
        age = max(time.time() - oldest, 0.0) if oldest is not None and pending else 0.0
        return ConsumerLag(pending=pending, oldest_age_seconds=age)

    async def close(self) -> None:
        """Stop consuming; in-flight deliveries come back after their ack_wait."""


def _deliveries(rows: list[Row]) -> list[Delivery]:
    headers_cache: dict[bytes, Mapping[str, str]] = {}
    out = []
    for seq, topic, deliveries, raw_headers, body, _reason in rows:
        headers: Mapping[str, str] = {}
        if raw_headers is not None:
            headers = headers_cache.get(raw_headers) or headers_cache.setdefault(
                raw_headers, _decode_headers(raw_headers)
            )
        out.append(Delivery(decode_envelope(body), topic, deliveries, headers, seq))
    return out


def _seq(delivery: Delivery) -> int:
    if not isinstance(delivery.token, int):
        msg = f"not a delivery of a SqliteLogBus: {delivery!r}"
        raise TypeError(msg)
    return delivery.token
