"""The consumers of the dynamic mode (ADR 0010): a router stage, then one durable per partition.

- **Router**: every member consumes ``inventory.commands`` and ``orders.events`` through the
  SHARED durables (``inventory-commands`` / ``inventory-orders``: each message goes to one
  member), translates each message and republishes it, as an ``inventory.commands`` envelope,
  to its partition's topic ``inventory-partitions.p<N>`` (a stream of its own: the
  ``inventory`` stream dedupes by message id and already holds the originals). A release or
  a shipment naming SKUs of several partitions is split, each part under the message id
  scoped to its partition (:meth:`~.ownership.Ownership.scoped_id`); a reservation goes whole
  to its first line's partition. The batch is acked after the bus confirmed the republish:
  a redelivered one republishes the same ids, which the partition stream drops (and the
  processed ids would make no-ops beyond its window).
- **Partitions**: the owner of partition ``p`` consumes ``p``'s durable
  ``inventory-p<N>``, whose position is shared by whoever owns ``p``: on a handover the new
  owner binds the same durable and goes on where the old one acked; what the old one had in
  hand and did not ack is redelivered. No message of ``p`` can be skipped by every member.
  Each member reads only its share of the bus (plus the router's share of the inputs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from prometheus_client import CollectorRegistry

from stockflow.inventory.domain.commands import (
    Command,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.entrypoints.consumers import SOURCES, CommandSink, settle
from stockflow.inventory.entrypoints.messages import command_of, envelope_of_command
from stockflow.inventory.service_layer.batch import Submission
from stockflow.inventory.service_layer.ownership import Spanning, partition_of, scoped_id
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

__all__ = ["PARTITION_STREAM", "PartitionedConsumers", "partition_topic", "routed"]

PARTITION_STREAM: Final = "inventory-partitions"


def partition_topic(partition: int) -> str:
    return f"{PARTITION_STREAM}.p{partition}"


def partition_durable(partition: int) -> str:
    return f"inventory-p{partition}"


def routed(message_id: str, command: Command, partitions: int) -> list[tuple[int, str, Command]]:
    """Where the router sends ``command``: ``(partition, message id, part)`` triples."""
    skus = command.skus
    first = partition_of(skus[0], partitions) if skus else 0
    match command:
        case (
            ReleaseReservation(order_id=order_id, skus=skus)
            | ShipStock(order_id=order_id, skus=skus)
        ):
            by_partition: dict[int, list[str]] = {}
            for sku in skus:
                by_partition.setdefault(partition_of(sku, partitions), []).append(sku)
            if len(by_partition) > 1:
                kind = type(command)
                return [
                    (p, scoped_id(message_id, p), kind(order_id=order_id, skus=tuple(part)))
                    for p, part in by_partition.items()
                ]
    return [(first, message_id, command)]


class PartitionedConsumers:
    """The router and the per-partition consumers of this member; see the module docstring.

    :meth:`start` starts the router; the lease manager calls :meth:`consume` and
    :meth:`stop_consuming` as partitions come and go.
    """

    def __init__(
        self,
        bus: Bus,
        writer: CommandSink,
        coordinator: ReservationCoordinator,
        *,
        batch_size: int = 1000,
        max_wait: float = 0.05,
        config: ConsumerConfig | None = None,
        registry: CollectorRegistry | None = None,
        in_flight_batches: int = 2,
    ) -> None:
        self.bus = bus
        self.writer = writer
        self.ownership = writer.ownership
        self.coordinator = coordinator
        self.batch_size, self.max_wait, self.config = batch_size, max_wait, config
        self.registry, self.in_flight_batches = registry, in_flight_batches
        self.router = Consumers(
            bus,
            SOURCES,
            self._router,
            config=config,
            batch_size=batch_size,
            max_wait=max_wait,
            max_in_flight=in_flight_batches,
            registry=registry,
            name="inventory router",
        )
        self.partitions: dict[int, Consumers[Command]] = {}

    async def start(self) -> None:
        await self.router.start()

    async def stop(self) -> None:
        await self.router.stop()
        await asyncio.gather(*(self.stop_consuming(p) for p in list(self.partitions)))

    @property
    def running(self) -> bool:
        return self.router.running

    async def consume(self, partition: int) -> None:
        if partition in self.partitions:
            return
        consumers: Consumers[Command] = Consumers(
            self.bus,
            [Source(partition_topic(partition), partition_durable(partition), command_of)],
            lambda _source: self._partition_handler(),
            config=self.config,
            batch_size=self.batch_size,
            max_wait=self.max_wait,
            max_in_flight=self.in_flight_batches,
            registry=self.registry,
            name=f"inventory partition {partition}",
        )
        self.partitions[partition] = consumers
        await consumers.start()

    async def stop_consuming(self, partition: int) -> None:
        consumers = self.partitions.pop(partition, None)
        if consumers is not None:
            await consumers.stop()

    def _router(self, source: Source[Command]) -> ItemsHandler[Command]:
        partitions = self.ownership.partitions
        bus = self.bus

        async def handle(items: Sequence[tuple[Delivery, Command]]) -> None:
            out: dict[int, tuple[list[Envelope], list[str | None]]] = {}
            causes = trace_causes([delivery for delivery, _ in items])
            for (delivery, command), cause in zip(items, causes, strict=True):
                envelope = delivery.envelope
                for partition, message_id, part in routed(envelope.id, command, partitions):
                    envelopes, traces = out.setdefault(partition, ([], []))
                    envelopes.append(
                        envelope_of_command(
                            part,
                            message_id=message_id,
                            correlation_id=envelope.correlation_id,
                            source="inventory-router",
                        )
                    )
                    traces.append(cause)
            await asyncio.gather(
                *(
                    bus.publish(partition_topic(p), envelopes, causes=traces)
                    for p, (envelopes, traces) in out.items()
                )
            )

        return handle

    def _partition_handler(self) -> ItemsHandler[Command]:
        ownership = self.ownership
        coordinator = self.coordinator
        partitions = ownership.partitions

        async def handle(items: Sequence[tuple[Delivery, Command]]) -> None:
            submissions: list[Submission] = []
            spanning: list[Spanning] = []
            causes = trace_causes([delivery for delivery, _ in items])
            for (delivery, command), cause in zip(items, causes, strict=True):
                envelope = delivery.envelope
                if isinstance(command, ReserveStock) and (
                    len({partition_of(sku, partitions) for sku, _ in command.lines}) > 1
                ):
                    spanning.append(Spanning(envelope.id, command, envelope.correlation_id, cause))
                else:
                    submissions.append(
                        Submission(envelope.id, command, envelope.correlation_id, traceparent=cause)
                    )
            await settle(self.writer, submissions, spanning, coordinator)

        return handle
