"""Sources: the topics a service consumes, each translated into its own items, run together.

A service declares what it consumes as :class:`Source` values (topic, durable name, and a
*translate* function from :class:`~stockflow_kit.messaging.envelope.Envelope` to the
service's item, e.g. a command), and one handler per source that applies a batch of items
(the effect). :class:`Consumers` subscribes and runs them::

    SOURCES = (
        Source("orders.events", "inventory-orders", command_of_order_event),
        Source("inventory.commands", "inventory-commands", command_of),
    )
    consumers = Consumers(bus, SOURCES, lambda source: writer.apply, max_wait=0.05)
    await consumers.start()
    ...
    await consumers.stop()

How a message fails decides what happens to it:

* **transient** (a database down, a timeout, a bug fixed by a deploy): the handler (or
  *translate*) raises anything but :class:`PermanentMessageError`. The whole batch is nakked
  and redelivered, and after ``max_deliver`` deliveries the bus dead-letters it.
* **permanent** (an unknown type, a payload that does not fit its schema): *translate* raises
  :class:`PermanentMessageError`. Retrying cannot help, so the message is dead-lettered at once
  (:meth:`~stockflow_kit.messaging.bus.Subscription.dead_letter`: ``deadletter.<stream>`` with
  the usual headers, counted ``outcome="dead_lettered"`` and logged by the bus) and the rest
  of its batch goes on. The adapter logs ``messaging.message_rejected`` once per message.
* **nothing to do**: *translate* returns ``None``; the message is acked with its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeAlias, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from stockflow_kit.messaging.bus import Bus, ConsumerConfig, Delivery, MessagingError, Subscription
from stockflow_kit.messaging.consumer import BatchHandler, Consumer
from stockflow_kit.messaging.envelope import Envelope

__all__ = ["Consumers", "ItemsHandler", "PermanentMessageError", "Source", "translated"]

T = TypeVar("T")

ItemsHandler: TypeAlias = Callable[[Sequence[tuple[Delivery, T]]], Awaitable[None]]
"""Applies one batch of translated items (each with its delivery); returns once committed."""

MAX_REASON_LENGTH: Final = 500
"""Dead-letter reasons are cut to this many characters (headers are small)."""

_log = structlog.get_logger("stockflow_kit.messaging")


class PermanentMessageError(Exception):
    """Raised by a *translate* function for a message that can never be handled.

    For an unknown type or a payload that does not fit its schema: the message is
    dead-lettered at once instead of being retried. Raise anything else for failures that may
    pass (they are nakked, redelivered, and dead-lettered only after ``max_deliver``).
    """


@dataclass(frozen=True, slots=True)
class Source(Generic[T]):
    """One topic a service consumes, and how its messages become the service's items.

    Args:
        topic: The topic (or ``"<stream>.>"``) to subscribe to.
        durable: The durable subscription name (:class:`Consumers` may add a suffix).
        translate: Turns an envelope into an item, or ``None`` when there is nothing to do
            for it (acked with its batch). Raises :class:`PermanentMessageError` for a message
            that can never be handled. Called once per delivery, in order, synchronously.
    """

    topic: str
    durable: str
    translate: Callable[[Envelope], T | None]


def translated(
    source: Source[T], handle_items: ItemsHandler[T], *, subscription: Subscription
) -> BatchHandler:
    """Return a batch handler that translates each delivery, then applies the items.

    For each delivery of a batch, in order, ``source.translate(delivery.envelope)`` is called:
    on :class:`PermanentMessageError` the delivery is dead-lettered at once through
    *subscription* with the reason ``"<ErrorType>: <message>"`` (cut to 500 characters); on
    ``None`` it is skipped; otherwise ``(delivery, item)`` is kept. Then *handle_items* is
    awaited once with the kept pairs (not at all when there are none). The
    :class:`~stockflow_kit.messaging.consumer.Consumer` acks the batch afterwards; the
    dead-lettered deliveries in it are skipped by that ack, and by the nak when
    *handle_items* (or *translate*, with another error) fails, so they are never redelivered.
    If dead-lettering itself fails, the batch fails (nakked, redelivered, tried again).
    """

    async def handle(batch: Sequence[Delivery]) -> None:
        pairs: list[tuple[Delivery, T]] = []
        for delivery in batch:
            try:
                item = source.translate(delivery.envelope)
            except PermanentMessageError as error:
                await _reject(subscription, delivery, error)
                continue
            if item is not None:
                pairs.append((delivery, item))
        if pairs:
            await handle_items(pairs)

    return handle


async def _reject(subscription: Subscription, delivery: Delivery, error: Exception) -> None:
    reason = f"{type(error).__name__}: {error}"[:MAX_REASON_LENGTH]
    _log.error(
        "messaging.message_rejected",
        subscription=subscription.name,
        topic=delivery.topic,
        message_id=delivery.envelope.id,
        message_type=delivery.envelope.type,
        reason=reason,
    )
    await subscription.dead_letter([delivery], reason=reason)


class Consumers(Generic[T]):
    """Subscribe to every source and run one :class:`Consumer` per source.

    A lifecycle component (``name``, :meth:`start`, :meth:`stop`, :meth:`readiness`).

    Args:
        bus: A started bus.
        sources: What to consume; each becomes the durable ``source.durable + durable_suffix``.
        handler_for: Returns the items handler of a source (called once per source, at
            :meth:`start`).
        config: Redelivery settings of the subscriptions (the bus default when ``None``).
        batch_size: ``max_messages`` of each fetch.
        max_wait: ``max_wait`` of each fetch: how long :meth:`stop` may take to notice.
        max_in_flight: Batches of one source in the handler at once (2 or more for a
            pipelined writer that decides batch N+1 while N commits).
        retry_delay: The nak delay after a failed batch (see :class:`Consumer`).
        registry: Prometheus registry of the consumers' metrics (default when ``None``).
        durable_suffix: Added to every durable name (e.g. ``"-r1"`` for replica 1).
        name: The component's name in logs and readiness.
    """

    def __init__(
        self,
        bus: Bus,
        sources: Sequence[Source[T]],
        handler_for: Callable[[Source[T]], ItemsHandler[T]],
        *,
        config: ConsumerConfig | None = None,
        batch_size: int = 1000,
        max_wait: float = 0.5,
        max_in_flight: int = 1,
        retry_delay: float = 1.0,
        registry: CollectorRegistry | None = None,
        durable_suffix: str = "",
        name: str = "consumers",
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.bus, self.sources, self.handler_for = bus, tuple(sources), handler_for
        self.config, self.batch_size, self.max_wait = config, batch_size, max_wait
        self.max_in_flight, self.retry_delay, self.registry = max_in_flight, retry_delay, registry
        self.durable_suffix, self.name = durable_suffix, name
        self._consumers: list[Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []

    def durable(self, source: Source[T]) -> str:
        """The durable name of *source*'s subscription."""
        return source.durable + self.durable_suffix

    async def start(self) -> None:
        """Subscribe every source and start its consumer (idempotent while running).

        Raises:
            MessagingError: when a subscription cannot be made (those made are closed).
        """
        if self._tasks:
            return
        subscriptions: list[Subscription] = []
        try:
            for source in self.sources:
                subscriptions.append(
                    await self.bus.subscribe(source.topic, self.durable(source), self.config)
                )
        except MessagingError:
            for subscription in subscriptions:
                await subscription.close()
            raise
        for source, subscription in zip(self.sources, subscriptions, strict=True):
            consumer = Consumer(
                subscription,
                translated(source, self.handler_for(source), subscription=subscription),
                batch_size=self.batch_size,
                max_wait=self.max_wait,
                max_in_flight=self.max_in_flight,
                retry_delay=self.retry_delay,
                registry=self.registry,
            )
            task = asyncio.create_task(consumer.run(), name=subscription.name)
            task.add_done_callback(self._report_end)
            self._consumers.append(consumer)
            self._tasks.append(task)
        await asyncio.sleep(0)  # let every run() begin, so that an early stop() is seen

    async def stop(self) -> None:
        """Let each consumer settle (ack or nak) its batches in hand, then close the
        subscriptions. Idempotent."""
        consumers, tasks = self._consumers, self._tasks
        self._consumers, self._tasks = [], []
        await asyncio.gather(*(consumer.stop() for consumer in consumers))
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            try:
                await consumer.subscription.close()
            except MessagingError as error:
                _log.warning(
                    "messaging.close_failed",
                    subscription=consumer.subscription.name,
                    error=str(error),
                )

    @property
    def running(self) -> bool:
        """Whether it was started and every consumer is still running."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def readiness(self) -> str | None:
        """``None`` when every consumer runs, else why not (for a readiness probe)."""
        if not self._tasks:
            return f"{self.name}: not started"
        for task in self._tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                ended = f"failed: {error!r}" if error is not None else "stopped"
                return f"{self.name}: consumer {task.get_name()!r} {ended}"
        return None

    def _report_end(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            _log.error(
                "messaging.consumer_failed",
                component=self.name,
                subscription=task.get_name(),
                error=repr(error),
            )
