"""The inventory's bus consumers: its commands and the orders' events, fed to the writer.

The two topics are a table of the kit's :class:`~stockflow_kit.messaging.Source` (topic,
durable, translate), consumed by the kit's :class:`~stockflow_kit.messaging.Consumers`. Each
fetched batch becomes one group of submissions to the writer (which may merge it with other
batches and HTTP commands into one commit); the batch is acked only after every submission's
outcome is known, i.e. after the commit. A writer failure raises, so the batch is nakked:
redelivery, then dead letter.

A malformed message (unknown type, payload that does not fit its schema) is never retried: it
cannot get better. Its translation raises :class:`MalformedMessageError` (a
:class:`~stockflow_kit.messaging.PermanentMessageError`), so the kit dead-letters it at once
through the bus port, with the usual headers and the reason; it is also counted here
(``inventory_malformed_messages_total``).

Several replicas (ADR 0005): every replica consumes both topics through its own durables
(``<durable>-r<index>``) and keeps its part of each message (``Ownership.route``). A
reservation spanning replicas is driven by the :class:`ReservationCoordinator` of the replica
owning its first line, concurrently with the rest of the batch; the batch is acked only when
every part of it settled, and nakked (redelivered, re-driven) when any did not. With one
replica none of this runs: the durables keep their names and the hot path its shape.

With leases (ADR 0010) :mod:`.partitioned` consumes instead: a router on the shared durables,
then one durable per partition, consumed by its current owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Final, Protocol

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
    Bus,
    ConsumerConfig,
    Consumers,
    Delivery,
    Envelope,
    ItemsHandler,
    Source,
    trace_causes,
)
from stockflow_kit.observability import counter

__all__ = [
    "COMMANDS_DURABLE",
    "ORDERS_DURABLE",
    "SOURCES",
    "CommandSink",
    "InventoryConsumers",
    "durable_suffix",
    "settle",
]

COMMANDS_DURABLE: Final = "inventory-commands"
ORDERS_DURABLE: Final = "inventory-orders"

SOURCES: Final[tuple[Source[Command], ...]] = (
    Source(COMMANDS_TOPIC, COMMANDS_DURABLE, command_of),
    Source(ORDERS_EVENTS_TOPIC, ORDERS_DURABLE, command_of_order_event),
)
"""What the inventory consumes: topic, durable name, envelope -> command (``None``: ignore)."""


def durable_suffix(ownership: Ownership) -> str:
    """The durables of one replica: the plain names with one replica (compatible), else
    ``<durable>-r<index>``: every replica must see every message."""
    return "" if ownership.owns_all else f"-r{ownership.replica_index}"


class CommandSink(Protocol):
    """Where consumed commands go: the writer itself, or the socket to it (:mod:`.feeder`)."""

    @property
    def ownership(self) -> Ownership: ...

    def enqueue_many(self, submissions: Sequence[Submission]) -> asyncio.Future[list[Outcome]]: ...


class InventoryConsumers:
    """Consume :data:`SOURCES` through durable subscriptions into ``writer``."""

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
        self.writer = writer
        self.ownership = writer.ownership
        self.coordinator = coordinator
        if not self.ownership.owns_all and coordinator is None:
            raise ValueError("several replicas need a ReservationCoordinator (peer URLs)")
        self.malformed = counter(
            "inventory_malformed_messages",
            "Messages whose type or payload the inventory cannot read (dead-lettered at once).",
            ["topic"],
            registry=registry,
        )
        self.consumers = Consumers(
            bus,
            [self._counted(source) for source in SOURCES],
            self._handler,
            config=config,
            batch_size=batch_size,
            max_wait=max_wait,
            # Fetch batch N+1 while N commits: the writer decides it meanwhile.
            max_in_flight=in_flight_batches,
            registry=registry,
            durable_suffix=durable_suffix(self.ownership),
            name="inventory consumers",
        )

    async def start(self) -> None:
        await self.consumers.start()

    async def stop(self) -> None:
        await self.consumers.stop()

    @property
    def running(self) -> bool:
        return self.consumers.running

    def _counted(self, source: Source[Command]) -> Source[Command]:
        translate, malformed = source.translate, self.malformed.labels(source.topic)

        def counting(envelope: Envelope) -> Command | None:
            try:
                return translate(envelope)
            except MalformedMessageError:
                malformed.inc()
                raise

        return Source(source.topic, source.durable, counting)

    def _handler(self, _source: Source[Command]) -> ItemsHandler[Command]:
        if not self.ownership.owns_all:
            return self._routing_handler()
        enqueue = self.writer.enqueue_many

        async def handle(items: Sequence[tuple[Delivery, Command]]) -> None:
            # One future for the whole batch; it raises if the batch's commit failed.
            causes = trace_causes([delivery for delivery, _ in items])
            await enqueue(
                [
                    Submission(
                        message_id=delivery.envelope.id,
                        command=command,
                        correlation_id=delivery.envelope.correlation_id,
                        traceparent=cause,
                    )
                    for (delivery, command), cause in zip(items, causes, strict=True)
                ]
            )

        return handle

    def _routing_handler(self) -> ItemsHandler[Command]:
        ownership = self.ownership
        coordinator = self.coordinator
        assert coordinator is not None

        async def handle(items: Sequence[tuple[Delivery, Command]]) -> None:
            submissions: list[Submission] = []
            spanning: list[Spanning] = []
            causes = trace_causes([delivery for delivery, _ in items])
            for (delivery, command), cause in zip(items, causes, strict=True):
                envelope = delivery.envelope
                part = ownership.route(envelope.id, command, envelope.correlation_id, cause)
                if isinstance(part, Submission):
                    submissions.append(part)
                elif part is not None:
                    spanning.append(part)
            await settle(self.writer, submissions, spanning, coordinator)

        return handle


async def settle(
    writer: CommandSink,
    submissions: Sequence[Submission],
    spanning: Sequence[Spanning],
    coordinator: ReservationCoordinator,
) -> None:
    """Hand a consumed batch's parts over: ``submissions`` to the writer (one group), each of
    ``spanning`` to the coordinator, concurrently; raise the first failure once ALL settled
    (nothing is left running behind a nak; the redelivery re-drives only what is not done)."""
    if not spanning:
        if submissions:
            await writer.enqueue_many(submissions)
        return
    pending: list[Awaitable[object]] = [coordinator.reserve(s) for s in spanning]
    if submissions:
        pending.insert(0, writer.enqueue_many(submissions))
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
