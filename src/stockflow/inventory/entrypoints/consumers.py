"""The inventory's bus consumers: its commands and the orders' events, fed to the writer.

Each fetched batch becomes one group of submissions to the writer (which may merge it with
other batches and HTTP commands into one commit); the batch is acked by the kit's
:class:`~stockflow_kit.messaging.Consumer` only after every submission's outcome is known,
i.e. after the commit. A writer failure raises, so the runner naks the batch: redelivery, then
dead letter.

A malformed message (unknown type, payload that does not fit its schema) is never retried: it
cannot get better. It is published at once to the dead-letter topic with the usual headers and
the reason, counted (``inventory_malformed_messages_total``) and logged, then acked with its
batch, so it can never become a crash loop.

Several replicas (ADR 0005): every replica consumes both topics through its own durables
(``<durable>-r<index>``) and keeps its part of each message (``Ownership.route``). A
reservation spanning replicas is driven by the :class:`ReservationCoordinator` of the replica
owning its first line, concurrently with the rest of the batch; the batch is acked only when
every part of it settled, and nakked (redelivered, re-driven) when any did not. With one
replica none of this runs: the durables keep their names and the hot path its shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import structlog
from prometheus_client import CollectorRegistry

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow.inventory.domain.commands import Command
from stockflow.inventory.entrypoints.messages import (
    MalformedMessageError,
    command_of,
    command_of_order_event,
)
from stockflow.inventory.service_layer.batch import Outcome, Submission
from stockflow.inventory.service_layer.ownership import Ownership, Spanning
from stockflow.inventory.service_layer.reservations import ReservationCoordinator
from stockflow_kit.messaging import (
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    DEAD_LETTER_TOPIC_HEADER,
    BatchHandler,
    Bus,
    Consumer,
    ConsumerConfig,
    Delivery,
    Envelope,
    dead_letter_topic,
)
from stockflow_kit.observability import counter

__all__ = ["COMMANDS_DURABLE", "ORDERS_DURABLE", "InventoryConsumers", "durable_name"]

COMMANDS_DURABLE: Final = "inventory-commands"
ORDERS_DURABLE: Final = "inventory-orders"
_log = structlog.get_logger("stockflow.inventory")

Translate = Callable[[Envelope], Command | None]


@dataclass(frozen=True)
class _Source:
    topic: str
    durable: str
    translate: Translate


def durable_name(durable: str, ownership: Ownership) -> str:
    """The durable of one replica: the plain name with one replica (compatible), else
    ``<durable>-r<index>``: every replica must see every message."""
    return durable if ownership.owns_all else f"{durable}-r{ownership.replica_index}"


SOURCES: Final = (
    _Source(COMMANDS_TOPIC, COMMANDS_DURABLE, command_of),
    _Source(ORDERS_EVENTS_TOPIC, ORDERS_DURABLE, command_of_order_event),
)


class CommandSink(Protocol):
    """Where consumed commands go: the writer itself, or the pipe to it (:mod:`.feeder`)."""

    @property
    def ownership(self) -> Ownership: ...

    def enqueue_many(self, submissions: Sequence[Submission]) -> asyncio.Future[list[Outcome]]: ...


class InventoryConsumers:
    """Consume both topics through durable subscriptions into ``writer``."""

    def __init__(
        self,
        bus: Bus,
        writer: CommandSink,
        *,
        batch_size: int = 1000,
        max_wait: float = 0.05,
        config: ConsumerConfig | None = None,
        registry: CollectorRegistry | None = None,
        in_flight_batches: int = 2,
        coordinator: ReservationCoordinator | None = None,
    ) -> None:
        self.bus = bus
        self.writer = writer
        self.ownership = writer.ownership
        self.coordinator = coordinator
        if not self.ownership.owns_all and coordinator is None:
            raise ValueError("several replicas need a ReservationCoordinator (peer URLs)")
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.config = config
        self.registry = registry
        self.in_flight_batches = in_flight_batches
        self.malformed = counter(
            "inventory_malformed_messages",
            "Messages whose type or payload the inventory cannot read (dead-lettered at once).",
            ["topic"],
            registry=registry,
        )
        self._consumers: list[Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for source in SOURCES:
            durable = durable_name(source.durable, self.ownership)
            subscription = await self.bus.subscribe(source.topic, durable, self.config)
            consumer = Consumer(
                subscription,
                self._handler(source),
                batch_size=self.batch_size,
                max_wait=self.max_wait,
                registry=self.registry,
                # Fetch batch N+1 while N commits: the writer decides it meanwhile.
                max_in_flight=self.in_flight_batches,
            )
            self._consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run(), name=durable))

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self._consumers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.subscription.close()
        self._consumers.clear()
        self._tasks.clear()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not task.done() for task in self._tasks)

    def _handler(self, source: _Source) -> BatchHandler:
        if not self.ownership.owns_all:
            return self._routing_handler(source)

        async def handle(batch: Sequence[Delivery]) -> None:
            submissions = []
            for delivery in batch:
                envelope = delivery.envelope
                try:
                    command = source.translate(envelope)
                except MalformedMessageError as error:
                    await self._dead_letter(source, delivery, str(error))
                    continue
                if command is None:
                    continue
                submissions.append(
                    Submission(
                        message_id=envelope.id,
                        command=command,
                        correlation_id=envelope.correlation_id,
                    )
                )
            if submissions:
                # One future for the whole batch; it raises if the batch's commit failed.
                await self.writer.enqueue_many(submissions)

        return handle

    def _routing_handler(self, source: _Source) -> BatchHandler:
        ownership = self.ownership
        coordinator = self.coordinator
        assert coordinator is not None

        async def handle(batch: Sequence[Delivery]) -> None:
            submissions: list[Submission] = []
            spanning: list[Spanning] = []
            for delivery in batch:
                envelope = delivery.envelope
                try:
                    command = source.translate(envelope)
                except MalformedMessageError as error:
                    await self._dead_letter(source, delivery, str(error))
                    continue
                if command is None:
                    continue
                part = ownership.route(envelope.id, command, envelope.correlation_id)
                if isinstance(part, Submission):
                    submissions.append(part)
                elif part is not None:
                    spanning.append(part)
            if not spanning:
                if submissions:
                    await self.writer.enqueue_many(submissions)
                return
            pending: list[Awaitable[object]] = [coordinator.reserve(s) for s in spanning]
            if submissions:
                pending.insert(0, self.writer.enqueue_many(submissions))
            # Let every part settle before failing the batch: nothing is left running behind
            # a nak, and the redelivery re-drives only what is not yet done.
            results = await asyncio.gather(*pending, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

        return handle

    async def _dead_letter(self, source: _Source, delivery: Delivery, reason: str) -> None:
        self.malformed.labels(source.topic).inc()
        _log.error(
            "inventory.malformed_message",
            topic=source.topic,
            message_id=delivery.envelope.id,
            message_type=delivery.envelope.type,
            reason=reason,
        )
        headers = {
            DEAD_LETTER_TOPIC_HEADER: delivery.topic,
            DEAD_LETTER_SUBSCRIPTION_HEADER: source.durable,
            DEAD_LETTER_DELIVERY_COUNT_HEADER: str(delivery.delivery_count),
            DEAD_LETTER_REASON_HEADER: f"malformed: {reason}"[:500],
        }
        await self.bus.publish(
            dead_letter_topic(delivery.topic), [delivery.envelope], headers=headers
        )
