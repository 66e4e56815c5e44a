"""Ports of the inventory service layer: the event store by role, its value types, the peers.

The store is built for the batching worker (ARCHITECTURE.md, "Throughput design"): one
:meth:`EventLog.commit` writes the events of many streams, the ids of the messages that
caused them (the inbox), the stock projection rows, the idempotency records of the responses
and the partition fence in ONE transaction. Either all of it is durable, or none of it is and
an error says why.

Roles (one adapter class implements them all: :class:`EventStore`)::

    StoreLifecycle      start, close
    EventLog            commit, read_stream, read_all, stream_version, stream_versions,
                        fence_version
    Snapshots           save_snapshots, load_snapshots
    Checkpoints         projection_checkpoint, checkpoint, save_checkpoint
    ProcessedIds        processed, prune_processed
    StockReader         get_stock, all_stock
    StockProjection     StockReader + replace_stock
    IdempotencyRecords  get, put, prune

Errors, as a tree::

    EventStoreError
    ├── ConcurrencyError         another writer got there first; reload, redecide, retry
    │   ├── StaleFenceError      the partition fence moved: this process no longer owns it
    │   └── DuplicateMessageError  a message id of the batch is already processed
    ├── LeaseLostError           a partition lease the batch claims moved (dynamic mode)
    ├── DuplicateEventError      an event id of the batch is already stored
    └── EventStoreUnavailableError  the database cannot be reached (after the store's own
                                 retries); a ``commit`` may or may not have happened
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from stockflow.inventory.service_layer.store_values import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    DuplicateMessageError,
    EventStoreError,
    EventStoreUnavailableError,
    Fence,
    IdempotencyRecord,
    LeaseClaim,
    LeaseLostError,
    NewEvent,
    Snapshot,
    StaleFenceError,
    StockRow,
    StoredEvent,
)

__all__ = [
    "Checkpoints",
    "CommitBatch",
    "ConcurrencyError",
    "DuplicateEventError",
    "DuplicateMessageError",
    "EventLog",
    "EventStore",
    "EventStoreError",
    "EventStoreUnavailableError",
    "Fence",
    "IdempotencyRecord",
    "IdempotencyRecords",
    "Lease",
    "LeaseClaim",
    "LeaseLostError",
    "LeaseStore",
    "Member",
    "NewEvent",
    "PeerUnavailableError",
    "Peers",
    "ProcessedIds",
    "Snapshot",
    "Snapshots",
    "StaleFenceError",
    "StockProjection",
    "StockReader",
    "StockRow",
    "StoreLifecycle",
    "StoredEvent",
]


class StoreLifecycle(Protocol):
    """Call :meth:`start` before anything else and :meth:`close` at the end."""

    async def start(self) -> None:
        """Connect, and create or migrate the schema (idempotently)."""
        ...

    async def close(self) -> None:
        """Release the connections; a closed store may not be used again."""
        ...


class EventLog(Protocol):
    """The durable log of events per SKU stream, written in batches (:class:`CommitBatch`)."""

    async def commit(self, batch: CommitBatch) -> int:
        """Write the whole batch in one transaction: events, processed ids, stock rows,
        idempotency records and the fence move.

        When it carries events, the projection checkpoint moves to the last event's position
        in the same transaction: the stock rows of a batch are folded up to its events.

        Returns:
            The projection checkpoint after the commit (the last event's global position).

        Raises:
            ConcurrencyError: a stream conflict or gap, a stale fence, or a message id that is
                already processed. Nothing of the batch is committed.
            DuplicateEventError: an event id is already stored. Nothing is committed.
        """
        ...

    async def read_stream(
        self, stream_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Events of one stream with ``sequence > after``, oldest first."""
        ...

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Events of every stream with ``position > after_position``, in position order."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The last sequence of a stream; 0 when it has no events."""
        ...

    async def stream_versions(self) -> dict[str, int]:
        """The last sequence of every stream that has events: one index probe per stream,
        not a scan of the log (what a writer's start needs next to the snapshots)."""
        ...

    async def fence_version(self, key: str) -> int:
        """The current version of a partition fence; 0 when it never moved."""
        ...


class Snapshots(Protocol):
    """Encoded stream states, so that loading need not fold every event from the start."""

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """Store (replace) the snapshot of each stream named."""
        ...

    async def load_snapshots(self) -> list[Snapshot]:
        """The latest snapshot of every stream that has one."""
        ...


class Checkpoints(Protocol):
    """Positions in the log up to which a reader has gone (the projection, the relay …)."""

    async def projection_checkpoint(self) -> int:
        """The global position of the last event folded into the stock projection; 0 at first."""
        ...

    async def checkpoint(self, name: str) -> int:
        """The position saved under ``name`` (e.g. ``"published"``); 0 when never saved.

        ``"projection"`` is the projection checkpoint, moved only by ``commit`` and
        ``replace_stock``.
        """
        ...

    async def save_checkpoint(self, name: str, position: int) -> None:
        """Move checkpoint ``name`` forward to ``position`` (never backwards).

        Raises:
            ValueError: for ``"projection"``, which only ``commit`` and ``replace_stock`` move.
        """
        ...


class ProcessedIds(Protocol):
    """The inbox: ids of the messages whose effects are committed (written by ``commit``)."""

    async def processed(self, message_ids: Collection[str]) -> set[str]:
        """Which of ``message_ids`` were recorded as processed."""
        ...

    async def prune_processed(self, older_than: datetime) -> int:
        """Forget processed ids recorded before ``older_than``; returns how many (ADR 0004)."""
        ...


class StockReader(Protocol):
    """The stock projection as the read side sees it: one row per SKU whose stream the writer
    gave a row (see :attr:`CommitBatch.stock`), folded over all its events."""

    async def get_stock(self, sku: str) -> StockRow | None:
        """The row of ``sku``; ``None`` when it has none."""
        ...

    async def all_stock(self) -> list[StockRow]:
        """Every projection row, ordered by SKU."""
        ...


class StockProjection(StockReader, Protocol):
    """The stock projection, with the way to replace all of it (a rebuild).

    Rows are upserted by ``commit``, with their events.
    """

    async def replace_stock(self, rows: Sequence[StockRow], *, checkpoint: int) -> None:
        """In one transaction, delete every row, insert ``rows`` (the last of a SKU wins) and
        set the projection checkpoint to ``checkpoint``.

        ``rows`` must be folded from every event up to position ``checkpoint``, which must be
        the log's last position (0 for an empty log): a commit that lands in between makes the
        call fail instead of hiding its events behind the checkpoint.

        Raises:
            ConcurrencyError: the log holds an event after ``checkpoint`` (a writer committed
                during the rebuild). Nothing is replaced.
            ValueError: ``checkpoint`` is beyond the log's last position. Nothing is replaced.
        """
        ...


class IdempotencyRecords(Protocol):
    """Stored responses to requests with an Idempotency-Key, per ``(scope, key)``.

    Records written by ``commit`` (:attr:`CommitBatch.idempotency`) are atomic with their
    effect; :meth:`put` is for responses without one.
    """

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The record of ``key`` in ``scope``, if any."""
        ...

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store ``record`` unless its ``(scope, key)`` already has one (first wins).

        Returns:
            The record stored: ``record``, or the one that was there first.
        """
        ...

    async def prune(self, older_than: float) -> int:
        """Forget the records created before ``older_than`` (Unix seconds); returns how many."""
        ...


class EventStore(
    StoreLifecycle,
    EventLog,
    Snapshots,
    Checkpoints,
    ProcessedIds,
    StockProjection,
    IdempotencyRecords,
    Protocol,
):
    """Every role in one: what each event store adapter implements.

    Durable event log per SKU, with the inbox, the stock projection, snapshots, checkpoints
    and idempotency records. Prefer the role a caller needs (e.g. ``StockReader``) in new code.
    """


@dataclass(frozen=True, slots=True)
class Lease:
    """One partition's lease as the store has it: ``owner`` ``None`` when free; ``live``
    whether its expiry is still ahead (by the database's clock)."""

    partition: int
    owner: str | None
    epoch: int
    live: bool


@dataclass(frozen=True, slots=True)
class Member:
    """A live inventory member and the base URL its peers call it at."""

    member_id: str
    url: str


class LeaseStore(Protocol):
    """Partition leases and membership (dynamic assignment, ADR 0010). Expiry uses the
    database's clock only; safety never depends on it: a commit claims ``(partition, epoch)``
    (:class:`LeaseClaim`) and a takeover bumps the epoch under the row's lock."""

    async def ensure_partitions(self, partitions: Collection[int]) -> None:
        """Create the (free) lease rows of ``partitions`` that do not exist yet."""
        ...

    async def heartbeat(self, member: str, url: str, ttl: float) -> list[Member]:
        """Record ``member`` alive for ``ttl`` s more; return every live member, by id."""
        ...

    async def leave(self, member: str) -> None:
        """Forget ``member`` (a graceful stop), so the others rebalance at once."""
        ...

    async def leases(self) -> list[Lease]:
        """Every lease row, by partition."""
        ...

    async def acquire(self, partition: int, member: str, ttl: float) -> int | None:
        """Take ``partition`` if it is free or expired: owner ``member``, epoch + 1, expiry in
        ``ttl`` s; return the new epoch, ``None`` when someone else holds it live."""
        ...

    async def renew(self, member: str, ttl: float) -> dict[int, int]:
        """Extend every lease ``member`` still owns; return them (partition -> epoch)."""
        ...

    async def release(self, partition: int, member: str, epoch: int) -> bool:
        """Free ``partition`` if ``member`` still holds it at ``epoch``; whether it did."""
        ...


class PeerUnavailableError(Exception):
    """Another inventory replica did not give a definite answer (unreachable, timed out,
    breaker open, 5xx, misconfigured): the outcome of the call is unknown. Transient: the
    caller fails its batch, so the bus redelivers it and the protocol is re-driven."""


class Peers(Protocol):
    """The other inventory replicas, as a coordinator of spanning reservations sees them.

    Every call is idempotent per ``key``: the replica records it under that message id, so a
    retry, a redelivery or a late duplicate never applies twice (ADR 0003).
    """

    async def reserve(
        self,
        replica: int,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        key: str,
        correlation_id: str | None = None,
    ) -> bool:
        """Reserve ``lines`` (all owned by ``replica``) all-or-nothing.

        Returns:
            Whether the order holds exactly these lines there afterwards (``False``: rejected,
            or an earlier call with this key was already compensated).

        Raises:
            PeerUnavailableError: no definite answer.
        """
        ...

    async def release(
        self,
        replica: int,
        order_id: str,
        skus: Sequence[str],
        *,
        key: str,
        correlation_id: str | None = None,
    ) -> None:
        """Release what the order holds on ``skus`` at ``replica`` (a no-op where it holds
        nothing). Raises :class:`PeerUnavailableError` without a definite answer."""
        ...

    async def aclose(self) -> None: ...
