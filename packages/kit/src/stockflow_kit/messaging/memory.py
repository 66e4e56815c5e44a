"""The in-memory bus: the fake for unit tests, with the same semantics as the durable ones.

Everything lives in an :class:`InMemoryBroker`; several :class:`InMemoryBus` instances may
share one broker to play "the same storage" (a consumer restart). Nothing survives the
process. Redelivery deadlines use a monotonic clock (injectable), and the dedupe window is the
broker's lifetime: an envelope id is stored once per stream, forever.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from stockflow_kit.messaging._telemetry import (
    bus_metrics,
    dead_letter_headers,
    log_dead_lettered,
    publish_span,
)
from stockflow_kit.messaging._wakeup import Wakeup
from stockflow_kit.messaging.bus import (
    ACK_WAIT_EXPIRED_REASON,
    BusClosedError,
    ConsumerConfig,
    ConsumerLag,
    Delivery,
    SubscribeError,
    dead_letter_topic,
    stream_of,
    topic_matches,
)
from stockflow_kit.messaging.envelope import Envelope

__all__ = ["InMemoryBroker", "InMemoryBus"]


@dataclass(slots=True, frozen=True)
class _Record:
    topic: str
    envelope: Envelope
    headers: Mapping[str, str]
    published_at: float


@dataclass(slots=True)
class _InFlight:
    deliveries: int
    due: float
    reason: str | None = None


@dataclass(slots=True)
class _Durable:
    pattern: str
    cursor: int = 0  # index into the stream's log of the next message to hand out
    in_flight: dict[int, _InFlight] = field(default_factory=dict)
    due: list[tuple[float, int]] = field(default_factory=list)  # heap; stale entries skipped


class InMemoryBroker:
    """The shared state of in-memory buses: streams, dedupe sets and durable positions.

    Args:
        clock: Monotonic seconds; :func:`time.monotonic` by default.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logs: dict[str, list[_Record]] = {}
        self._ids: dict[str, set[str]] = {}
        self._durables: dict[tuple[str, str], _Durable] = {}
        self._wakeup = Wakeup()

    def append(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        headers: Mapping[str, str],
        *,
        dedupe: bool,
        each: Sequence[Mapping[str, str]] | None = None,
    ) -> int:
        """Append *envelopes* to *topic*'s stream; return how many were new.

        Every message gets *headers*, or its own of *each* when given.
        """
        stream = stream_of(topic)
        log = self._logs.setdefault(stream, [])
        ids = self._ids.setdefault(stream, set())
        now, before = self.clock(), len(log)
        for index, envelope in enumerate(envelopes):
            if dedupe:
                if envelope.id in ids:
                    continue
                ids.add(envelope.id)
            log.append(_Record(topic, envelope, headers if each is None else each[index], now))
        self.wake()
        return len(log) - before

    def durable(self, topic: str, name: str) -> _Durable:
        key = (stream_of(topic), name)
        state = self._durables.setdefault(key, _Durable(topic))
        if state.pattern != topic:
            msg = f"durable {name!r} is bound to {state.pattern!r}, not {topic!r}"
            raise SubscribeError(msg)
        return state

    def log(self, topic: str) -> list[_Record]:
        return self._logs.setdefault(stream_of(topic), [])

    def wake(self) -> None:
        self._wakeup.wake()

    async def wait(self, seconds: float) -> None:
        await self._wakeup.wait(seconds)


class InMemoryBus:
    """A :class:`~stockflow_kit.messaging.bus.Bus` held in process memory.

    Args:
        broker: The storage to use; a fresh :class:`InMemoryBroker` when omitted. Pass one
            broker to several buses to share streams and durable positions between them.
        registry: Prometheus registry for the messaging metrics (default registry if ``None``).
    """

    def __init__(
        self, *, broker: InMemoryBroker | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self.broker = broker or InMemoryBroker()
        self.metrics = bus_metrics(registry)
        self._open = False

    async def start(self) -> None:
        """Mark the bus usable; there is nothing to connect."""
        self._open = True

    async def close(self) -> None:
        """Mark the bus closed. Idempotent."""
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise BusClosedError("the in-memory bus is not started")

    async def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
        causes: Sequence[str | None] | None = None,
    ) -> None:
        """Append *envelopes* to *topic*; ids already in the stream are skipped."""
        self._check_open()
        with publish_span(topic, len(envelopes), headers, causes) as carriers:
            added = self.broker.append(
                topic, envelopes, carriers.shared, dedupe=True, each=carriers.each
            )
        self.metrics.count(topic, "", "published", added)
        self.metrics.count(topic, "", "duplicate_skipped", len(envelopes) - added)

    async def subscribe(
        self, topic: str, durable: str, config: ConsumerConfig | None = None
    ) -> InMemorySubscription:
        """Create or bind the durable subscription *durable* on *topic*."""
        self._check_open()
        state = self.broker.durable(topic, durable)
        return InMemorySubscription(self, durable, state, config or ConsumerConfig())


class InMemorySubscription:
    """A durable subscription of an :class:`InMemoryBus`."""

    def __init__(
        self, bus: InMemoryBus, name: str, state: _Durable, config: ConsumerConfig
    ) -> None:
        self._bus, self._name, self._state, self._config = bus, name, state, config
        self._log = bus.broker.log(state.pattern)

    @property
    def name(self) -> str:
        """The durable name."""
        return self._name

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        """Return up to *max_messages* deliveries, waiting at most *max_wait* s for the first."""
        broker = self._bus.broker
        deadline = broker.clock() + max_wait
        while True:
            self._bus._check_open()
            deliveries = self._claim(max_messages)
            if deliveries:
                self._bus.metrics.count_fetched(deliveries, self._name)
                return deliveries
            now = broker.clock()
            if now >= deadline:
                return deliveries
            wake_at = min(deadline, self._state.due[0][0]) if self._state.due else deadline
            await broker.wait(max(wake_at - now, 0.0))

    def _claim(self, limit: int) -> list[Delivery]:
        state, now = self._state, self._bus.broker.clock()
        out: list[Delivery] = []
        while state.due and state.due[0][0] <= now and len(out) < limit:
            due, index = heapq.heappop(state.due)
            entry = state.in_flight.get(index)
            if entry is None or entry.due != due:
                continue  # acked, or rescheduled by a nak
            if entry.deliveries >= self._config.max_deliver:
                self._dead_letter(index, entry.deliveries, entry.reason or ACK_WAIT_EXPIRED_REASON)
                continue
            entry.deliveries += 1
            out.append(self._deliver(index, entry, now))
        log = self._log
        while state.cursor < len(log) and len(out) < limit:
            index, state.cursor = state.cursor, state.cursor + 1
            if topic_matches(state.pattern, log[index].topic):
                entry = _InFlight(deliveries=1, due=0.0)
                state.in_flight[index] = entry
                out.append(self._deliver(index, entry, now))
        return out

    def _deliver(self, index: int, entry: _InFlight, now: float) -> Delivery:
        entry.due = now + self._config.ack_wait
        heapq.heappush(self._state.due, (entry.due, index))
        record = self._log[index]
        return Delivery(record.envelope, record.topic, entry.deliveries, record.headers, index)

    def _dead_letter(self, index: int, delivery_count: int, reason: str) -> None:
        del self._state.in_flight[index]
        record = self._log[index]
        headers = dead_letter_headers(
            record.headers,
            topic=record.topic,
            subscription=self._name,
            delivery_count=delivery_count,
            reason=reason,
        )
        self._bus.broker.append(
            dead_letter_topic(record.topic), [record.envelope], headers, dedupe=False
        )
        log_dead_lettered(
            self._bus.metrics,
            topic=record.topic,
            subscription=self._name,
            message_id=record.envelope.id,
            delivery_count=delivery_count,
            reason=reason,
        )

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark *deliveries* done; those no longer in flight are skipped (and not counted)."""
        self._bus._check_open()
        in_flight = self._state.in_flight
        acked = [d for d in deliveries if in_flight.pop(_index(d), None) is not None]
        self._bus.metrics.count_deliveries(acked, self._name, "acked")

    async def nak(
        self, deliveries: Sequence[Delivery], *, delay: float = 0.0, reason: str | None = None
    ) -> None:
        """Redeliver *deliveries* after *delay* seconds, remembering *reason*.

        Deliveries no longer in flight (acked, dead-lettered) are skipped and not counted.
        """
        self._bus._check_open()
        due = self._bus.broker.clock() + delay
        nakked = []
        for delivery in deliveries:
            index = _index(delivery)
            entry = self._state.in_flight.get(index)
            if entry is not None:
                entry.due, entry.reason = due, reason or entry.reason
                heapq.heappush(self._state.due, (due, index))
                nakked.append(delivery)
        self._bus.metrics.count_deliveries(nakked, self._name, "nakked")
        self._bus.broker.wake()

    async def dead_letter(self, deliveries: Sequence[Delivery], *, reason: str) -> None:
        """Move *deliveries* to the dead-letter topic now; see the port's docstring."""
        self._bus._check_open()
        for delivery in deliveries:
            index = _index(delivery)
            if index in self._state.in_flight:
                self._dead_letter(index, delivery.delivery_count, reason)

    async def lag(self) -> ConsumerLag:
        """Messages not yet acked, and the age of the oldest."""
        state, log = self._state, self._log
        waiting = [r for r in log[state.cursor :] if topic_matches(state.pattern, r.topic)]
        times = [log[i].published_at for i in state.in_flight]
        times += [r.published_at for r in waiting[:1]]
        age = self._bus.broker.clock() - min(times) if times else 0.0
        return ConsumerLag(pending=len(waiting) + len(state.in_flight), oldest_age_seconds=age)

    async def close(self) -> None:
        """Stop consuming; in-flight deliveries come back after their ack_wait."""


def _index(delivery: Delivery) -> int:
    token = delivery.token
    if not isinstance(token, int):
        msg = f"not a delivery of an in-memory bus: {delivery!r}"
        raise TypeError(msg)
    return token
