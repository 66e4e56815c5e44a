"""Which inventory process owns which SKU, and what part of a command is this process's.

Assignment by replica index (ADR 0005): SKUs hash (crc32) into ``partitions``; replica ``i``
of ``replicas`` owns the partitions ``p % replicas == i``. Every replica consumes every command
and order event (its own durables) and keeps only its part, as :meth:`Ownership.route` decides:

- ``ReceiveStock`` / ``AdjustStock``: the owner of the SKU; the others ignore it.
- ``ReleaseReservation`` / ``ShipStock``: each replica its own SKUs (per-SKU idempotent, so
  the parts need no atomicity). When the SKUs span replicas, each part is recorded under a
  message id scoped to the replica (:meth:`Ownership.scoped_id`): the processed ids live in
  the one shared database, and the parts must not deduplicate each other.
- ``ReserveStock`` whose SKUs are all owned by one replica: that replica, atomically (ADR 0003).
- ``ReserveStock`` spanning replicas: the owner of the first line's SKU coordinates it
  (:mod:`.reservations`); the others ignore it.

With one replica everything is local and :meth:`route` is never called (``owns_all``).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    OrderLine,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.service_layer.batch import Submission
from stockflow.inventory.service_layer.store_values import LeaseClaim

__all__ = ["FENCE_KEY", "Ownership", "Spanning", "fence_key", "partition_of", "scoped_id"]

FENCE_KEY = "inventory-writer"
"""The fence of a single-replica deployment (kept as it was, so old and new processes fence)."""


def partition_of(sku: str, partitions: int) -> int:
    """The partition of ``sku``: a stable hash (crc32), the same in every process and run."""
    return zlib.crc32(sku.encode()) % partitions


def scoped_id(message_id: str, unit: int) -> str:
    """``message_id`` scoped to ``unit`` (a replica, or a partition with leases): see
    :meth:`Ownership.scoped_id`."""
    try:
        value = uuid.UUID(message_id).int
    except ValueError:
        return f"{message_id}/r{unit}"
    return str(uuid.UUID(int=value ^ ((unit + 1) << 48)))


def fence_key(replicas: int, replica_index: int) -> str:
    """The fence of one replica's assignment: processes started with the same index (and the
    same ``replicas``) fence each other; different indexes own disjoint partitions."""
    if replicas == 1:
        return FENCE_KEY
    return f"{FENCE_KEY}/{replicas}/{replica_index}"


@dataclass(frozen=True, slots=True)
class Spanning:
    """A reservation whose lines span replicas, to be coordinated by this one."""

    message_id: str
    command: ReserveStock
    correlation_id: str | None
    traceparent: str | None = None


@dataclass(frozen=True)
class Ownership:
    """The partitions of replica ``replica_index`` out of ``replicas``."""

    partitions: int = 16
    replicas: int = 1
    replica_index: int = 0
    owns_all: bool = field(init=False)
    leased: ClassVar[bool] = False
    """Whether the partitions come from leases (:class:`~.leases.LeasedOwnership`)."""

    def __post_init__(self) -> None:
        if not 0 <= self.replica_index < self.replicas:
            raise ValueError(f"replica_index {self.replica_index} not in [0, {self.replicas})")
        if self.replicas > self.partitions:
            raise ValueError(f"{self.replicas} replicas need at least as many partitions")
        object.__setattr__(self, "owns_all", self.replicas == 1)

    @property
    def fence_key(self) -> str:
        return fence_key(self.replicas, self.replica_index)

    def owner_of(self, sku: str) -> int:
        """The replica index owning ``sku``."""
        return partition_of(sku, self.partitions) % self.replicas

    def owns(self, sku: str) -> bool:
        return self.owns_all or self.owner_of(sku) == self.replica_index

    def split(self, lines: Iterable[OrderLine]) -> dict[int, tuple[OrderLine, ...]]:
        """The lines per owning replica, in the order of their first line."""
        parts: dict[int, list[OrderLine]] = {}
        for line in lines:
            parts.setdefault(self.owner_of(line[0]), []).append(line)
        return {replica: tuple(part) for replica, part in parts.items()}

    def is_local(self, unit: int) -> bool:
        """Whether a part of :meth:`split` (here: a replica) is this process's own."""
        return unit == self.replica_index

    def part_key(self, message_id: str, unit: int) -> str:
        """The message id under which ``unit`` records its part of a spanning reservation:
        the coordinator (this replica) keeps the message's own id."""
        return message_id if self.is_local(unit) else self.scoped_id(message_id, unit)

    def claim(self, skus: Iterable[str]) -> LeaseClaim | None:
        """The lease claim of a batch writing ``skus``: none in the static mode (the fence)."""
        return None

    def lost(self, partitions: Iterable[int]) -> None:
        """Partitions a commit found leased to someone else (never, in the static mode)."""

    def scoped_id(self, message_id: str, replica: int | None = None) -> str:
        """The id under which ``replica`` (default: this one) records its part of a message.

        A UUID stays a UUID (the writer derives event ids from it cheaply): the replica number
        + 1 is XORed into bits 48-61, inside the random bits of a v4/v7 UUID, away from the
        low bits the event ids vary. Anything else gets a ``/r<replica>`` suffix.
        """
        return scoped_id(message_id, self.replica_index if replica is None else replica)

    def route(
        self,
        message_id: str,
        command: Command,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> Submission | Spanning | None:
        """This replica's part of a consumed command (see the module docstring)."""
        me = self.replica_index
        match command:
            case ReceiveStock(sku=sku) | AdjustStock(sku=sku):
                if self.owner_of(sku) != me:
                    return None
            case ReserveStock(lines=lines):
                owners = {self.owner_of(sku) for sku, _ in lines}
                if owners != {me}:
                    if not lines or self.owner_of(lines[0][0]) != me:
                        return None
                    return Spanning(message_id, command, correlation_id, traceparent)
            case (
                ReleaseReservation(order_id=order_id, skus=skus)
                | ShipStock(order_id=order_id, skus=skus)
            ):
                local = tuple(sku for sku in skus if self.owner_of(sku) == me)
                if not local:
                    return None
                if len(local) < len(skus):
                    part = type(command)(order_id=order_id, skus=local)
                    return Submission(
                        self.scoped_id(message_id), part, correlation_id, traceparent=traceparent
                    )
        return Submission(message_id, command, correlation_id, traceparent=traceparent)
