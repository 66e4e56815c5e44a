"""The bus port: durable, at-least-once messaging with explicit acks and dead letters.

Every backend (:class:`~stockflow_kit.messaging.memory.InMemoryBus`,
:class:`~stockflow_kit.messaging.sqlite_log.SqliteLogBus`,
:class:`~stockflow_kit.messaging.jetstream.JetStreamBus`) implements :class:`Bus` with the same
semantics, proved by one contract suite (:mod:`stockflow_kit.messaging.testing`):

* **Topics** are dot-separated names whose first token is the *stream*: ``orders.events``,
  ``inventory.commands``. A subscription names one topic, or a whole stream with ``"orders.>"``.
* **Publish** appends envelopes in order. Per topic, consumers see them in publish order
  (redeliveries excepted). An envelope whose ``id`` was already published within the dedupe
  window is dropped (JetStream: ``Nats-Msg-Id``), so re-publishing after a crash is safe.
* **Subscriptions** are durable and named: the position survives restarts of the consumer,
  of the process and (JetStream) of the server. Several processes may consume one durable
  subscription; each message goes to one of them at a time.
* **Fetch** returns up to ``max_messages`` waiting deliveries (a batch), waiting at most
  ``max_wait`` seconds for the first one. The wait is not a busy poll: new messages wake it
  (JetStream: a lingering pull; the local buses: a wakeup from publishers, and on SQLite a
  cheap watch for other processes' commits), and so does the expiry of an in-flight
  delivery's ``ack_wait``, so an idle consumer costs next to nothing.
* **Ack** only after the effect is committed. A delivery not acked within ``ack_wait`` is
  redelivered with ``delivery_count`` increased. ``nak`` asks for redelivery sooner.
* **Dead letters**: a message fetched for the ``max_deliver + 1``-th time is not handed out;
  it is published to the dead-letter topic ``deadletter.<stream>`` with headers naming the
  original topic, the subscription, the delivery count and the last reason
  (:data:`DEAD_LETTER_TOPIC_HEADER` and its siblings), then acked on the original
  subscription. The delivery count header holds the deliveries the message actually had
  (``max_deliver``); the reason is the last ``nak`` reason, else ``"ack_wait expired"``. A metric (``messaging_messages_total{outcome="dead_lettered"}``) and a
  log line (``messaging.dead_lettered``) record it: nothing is silently dropped.
* **Dead-lettering at once**: :meth:`Subscription.dead_letter` does the same for a message
  that can never succeed (malformed: see
  :class:`~stockflow_kit.messaging.sources.PermanentMessageError`) without waiting for
  ``max_deliver``: same topic, same four headers (the delivery count is the delivery's
  ``delivery_count``, the reason the one given), same metric and log line. The delivery is then
  done: a later ``ack`` or ``nak`` of it (the batch it came in) is a no-op, neither sent nor
  counted, and never brings it back.

Exception tree (adapters map driver errors into these at the boundary)::

    MessagingError
    ├── BusClosedError          the bus is not started, or was closed
    ├── PublishError            the message may not have been stored; safe to retry (same ids)
    ├── SubscribeError          the subscription could not be created or bound
    └── AckError                an ack/nak could not be recorded; the message will be redelivered
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from stockflow_kit.messaging.envelope import Envelope

__all__ = [
    "ACK_WAIT_EXPIRED_REASON",
    "DEAD_LETTER_DELIVERY_COUNT_HEADER",
    "DEAD_LETTER_PREFIX",
    "DEAD_LETTER_REASON_HEADER",
    "DEAD_LETTER_SUBSCRIPTION_HEADER",
    "DEAD_LETTER_TOPIC_HEADER",
    "AckError",
    "Bus",
    "BusClosedError",
    "ConsumerConfig",
    "ConsumerLag",
    "Delivery",
    "MessagingError",
    "PublishError",
    "SubscribeError",
    "Subscription",
    "dead_letter_topic",
    "stream_of",
    "topic_matches",
]

DEAD_LETTER_PREFIX = "deadletter"
"""First token of dead-letter topics: ``deadletter.<stream>``."""

DEAD_LETTER_TOPIC_HEADER = "X-Dead-Letter-Topic"
"""Dead-letter header: the topic the message was originally published to."""

DEAD_LETTER_SUBSCRIPTION_HEADER = "X-Dead-Letter-Subscription"
"""Dead-letter header: the durable subscription that gave up on the message."""

DEAD_LETTER_DELIVERY_COUNT_HEADER = "X-Dead-Letter-Delivery-Count"
"""Dead-letter header: how many deliveries the message had (decimal string)."""

DEAD_LETTER_REASON_HEADER = "X-Dead-Letter-Reason"
"""Dead-letter header: the last ``nak`` reason, or ``"ack_wait expired"``."""

ACK_WAIT_EXPIRED_REASON = "ack_wait expired"
"""The dead-letter reason when the last delivery was neither acked nor nakked in time."""


class MessagingError(Exception):
    """Base of every error raised by a bus."""


class BusClosedError(MessagingError):
    """The bus is not started, or was closed."""


class PublishError(MessagingError):
    """Publishing failed; the messages may or may not be stored. Retry with the same ids."""


class SubscribeError(MessagingError):
    """The durable subscription could not be created or bound."""


class AckError(MessagingError):
    """An ack or nak could not be recorded; the message will be redelivered after ack_wait."""


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """How a durable subscription redelivers.

    Args:
        ack_wait: Seconds a delivery may stay unacked before it is redelivered.
        max_deliver: Deliveries a message gets before it is dead-lettered on the next fetch.
    """

    ack_wait: float = 30.0
    max_deliver: int = 5


@dataclass(frozen=True, slots=True)
class ConsumerLag:
    """How far a subscription is behind.

    Args:
        pending: Messages published to its topic and not yet acked (delivered or not).
        oldest_age_seconds: Age of the oldest of them (0.0 when none is pending).
    """

    pending: int
    oldest_age_seconds: float


@dataclass(slots=True, eq=False)
class Delivery:
    """One delivery of one message to one subscription.

    Args:
        envelope: The decoded message.
        topic: The topic it was published to.
        delivery_count: 1 on first delivery, then 2, 3, ... on redeliveries.
        headers: Transport headers (trace context, dead-letter details); never the payload.
        token: Backend-private handle used to ack or nak this delivery.
    """

    envelope: Envelope
    topic: str
    delivery_count: int
    headers: Mapping[str, str] = field(default_factory=dict)
    token: object = None


@runtime_checkable
class Subscription(Protocol):
    """A durable, named consumer of one topic (or one stream with ``"<stream>.>"``)."""

    @property
    def name(self) -> str:
        """The durable name."""
        ...

    async def fetch(self, max_messages: int = 100, max_wait: float = 1.0) -> Sequence[Delivery]:
        """Return up to *max_messages* deliveries, waiting at most *max_wait* s for the first.

        Returns an empty sequence when nothing arrived in time. Messages past ``max_deliver``
        are dead-lettered here instead of being returned.
        """
        ...

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark *deliveries* done. Call only after their effect is committed."""
        ...

    async def nak(
        self, deliveries: Sequence[Delivery], *, delay: float = 0.0, reason: str | None = None
    ) -> None:
        """Ask for redelivery of *deliveries* after *delay* seconds; *reason* is kept for the
        dead-letter headers."""
        ...

    async def dead_letter(self, deliveries: Sequence[Delivery], *, reason: str) -> None:
        """Publish *deliveries* to the dead-letter topic at once, then ack them.

        The headers are those of the dead-lettering after ``max_deliver``: original topic,
        subscription, the delivery's ``delivery_count`` and *reason*. Each is counted
        (``outcome="dead_lettered"``, not ``"acked"``) and logged (``messaging.dead_lettered``).
        For messages that can never succeed (malformed). Acking or nakking them afterwards is
        a no-op; deliveries no longer in flight (already acked) are skipped.

        Raises:
            AckError: when a delivery could not be dead-lettered; it is still in flight
                (nak it, or it comes back after ``ack_wait``). Those done before it stay done.
        """
        ...

    async def lag(self) -> ConsumerLag:
        """Pending count and age of the oldest pending message."""
        ...

    async def close(self) -> None:
        """Stop consuming; unacked deliveries are redelivered to whoever consumes next."""
        ...


@runtime_checkable
class Bus(Protocol):
    """Publish envelopes to topics and consume them through durable subscriptions."""

    async def start(self) -> None:
        """Connect and create what is missing (streams, tables) idempotently."""
        ...

    async def close(self) -> None:
        """Flush and disconnect. Idempotent."""
        ...

    async def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        headers: Mapping[str, str] | None = None,
        causes: Sequence[str | None] | None = None,
    ) -> None:
        """Append *envelopes* to *topic*, in order, durably, before returning.

        Envelopes whose id was already published within the dedupe window are dropped.
        The current trace context is added to *headers* by the backend. *causes*, when
        given, holds per envelope the ``traceparent`` of the work that caused it (kept with
        it in an outbox or event log; see
        :func:`~stockflow_kit.observability.current_traceparent`): the messages then continue
        those traces instead of the current context's, each its own cause's when they span
        several.

        Raises:
            PublishError: when the bus could not confirm the messages are stored.
            BusClosedError: when the bus is not started.
        """
        ...

    async def subscribe(
        self, topic: str, durable: str, config: ConsumerConfig | None = None
    ) -> Subscription:
        """Create or bind the durable subscription *durable* on *topic*.

        A new durable subscription starts at the beginning of the topic's retained log.
        """
        ...


def stream_of(topic: str) -> str:
    """Return the stream of *topic*: its first dot-separated token."""
    return topic.split(".", 1)[0]


def dead_letter_topic(topic: str) -> str:
    """Return the dead-letter topic for messages of *topic*: ``deadletter.<stream>``."""
    return f"{DEAD_LETTER_PREFIX}.{stream_of(topic)}"


def topic_matches(pattern: str, topic: str) -> bool:
    """Tell whether *topic* matches *pattern*: equal, or *pattern* ``"a.b.>"`` as a prefix."""
    if pattern.endswith(".>"):
        return topic.startswith(pattern[:-1])
    return pattern == topic
