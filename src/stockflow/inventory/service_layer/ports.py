"""Ports of the inventory service layer: the ``EventStore`` protocol and its value types.

The store is built for the batching worker (ARCHITECTURE.md, "Throughput design"): one
:meth:`EventStore.commit` writes the events of many streams, the ids of the messages that
caused them (the inbox), the stock projection rows and the partition fence in ONE transaction.
Either all of it is durable, or none of it is and an error says why.

Errors, as a tree::

    EventStoreError
    ├── ConcurrencyError         another writer got there first; reload, redecide, retry
    │   ├── StaleFenceError      the partition fence moved: this process no longer owns it
    │   └── DuplicateMessageError  a message id of the batch is already processed
    ├── DuplicateEventError      an event id of the batch is already stored
    └── EventStoreUnavailableError  the database cannot be reached (after the store's own
                                 retries); a ``commit`` may or may not have happened
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

__all__ = [
    "CommitBatch",
    "ConcurrencyError",
    "DuplicateEventError",
    "DuplicateMessageError",
    "EventStore",
    "EventStoreError",
    "EventStoreUnavailableError",
    "Fence",
    "IdempotentResponse",
    "NewEvent",
    "PeerUnavailableError",
    "Peers",
    "Snapshot",
    "StaleFenceError",
    "StockRow",
    "StoredEvent",
]


class EventStoreError(Exception):
    """Base of the errors an event store raises; when raised by ``commit``, nothing was
    committed (except for :class:`EventStoreUnavailableError`)."""


class EventStoreUnavailableError(EventStoreError):
    """The database could not be reached, or the connection broke, for longer than the
    store's own retries wait. Transient: try again later.

    From ``commit``, the outcome is unknown (the connection may have broken during COMMIT).
    Redoing the batch is safe all the same: it then meets the moved fence, or its processed
    message ids, and the writer catches up instead of applying anything twice.
    """


class ConcurrencyError(EventStoreError):
    """An expected version did not hold: a ``(stream, sequence)`` that exists, a gap in a
    stream, or a stale fence."""


class StaleFenceError(ConcurrencyError):
    pass


class DuplicateMessageError(ConcurrencyError):
    pass


class DuplicateEventError(EventStoreError):
    pass


class NewEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event to append as number ``sequence`` (1, 2, …) of stream ``stream_id`` (the SKU).

    ``data`` is the msgspec-JSON encoding of the event's contract struct; ``occurred_at`` is
    timezone-aware.
    """

    stream_id: str
    sequence: int
    event_id: uuid.UUID
    type: str
    data: bytes
    occurred_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A committed event; ``position`` orders all events of the store (gaps are possible)."""

    position: int
    stream_id: str
    sequence: int
    event_id: uuid.UUID
    type: str
    data: bytes
    occurred_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


class StockRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One row of the stock projection: a SKU after ``version`` events."""

    sku: str
    on_hand: int
    reserved: int
    version: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Fence(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Commit only if fence ``key`` is at ``expected_version`` (0 = never committed), and move
    it to ``expected_version + 1`` in the same transaction."""

    key: str
    expected_version: int


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A stream's encoded state after ``version`` events."""

    stream_id: str
    version: int
    state: bytes


class IdempotentResponse(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The response first given to a request with Idempotency-Key ``key``.

    ``request_hash`` identifies the request (method, path, body): a replay with another hash is
    a conflict, not a replay.
    """

    key: str
    request_hash: str
    status: int
    body: bytes


class CommitBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Everything one batch writes, atomically.

    Attributes:
        events: New events of any number of streams. Per stream the sequences must be
            consecutive and follow the stream's current version.
        processed: Ids of the messages this batch handled, recorded at ``processed_at``.
        stock: Projection rows to upsert: one per SKU the events touched, folded up to them.
        processed_at: When the batch was processed (``prune_processed`` compares with it).
        fence: The partition fence to check and move, if any.
    """

    events: Sequence[NewEvent] = ()
    processed: Sequence[str] = ()
    stock: Sequence[StockRow] = ()
    processed_at: datetime
    fence: Fence | None = None


class EventStore(Protocol):
    """Durable event log per SKU, with the inbox, the stock projection and snapshots.

    Call :meth:`start` before anything else (it creates the schema, idempotently) and
    :meth:`close` at the end.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def commit(self, batch: CommitBatch) -> int:
        """Write the whole batch in one transaction.

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

    async def processed(self, message_ids: Collection[str]) -> set[str]:
        """Which of ``message_ids`` were recorded as processed."""
        ...

    async def prune_processed(self, older_than: datetime) -> int:
        """Forget processed ids recorded before ``older_than``; returns how many (ADR 0004)."""
        ...

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        """Store (replace) the snapshot of each stream named."""
        ...

    async def load_snapshots(self) -> list[Snapshot]:
        """The latest snapshot of every stream that has one."""
        ...

    async def get_stock(self, sku: str) -> StockRow | None: ...

    async def all_stock(self) -> list[StockRow]:
        """Every projection row, ordered by SKU."""
        ...

    async def projection_checkpoint(self) -> int:
        """The global position of the last event folded into the stock projection; 0 at first."""
        ...

    async def fence_version(self, key: str) -> int:
        """The current version of a partition fence; 0 when it never moved."""
        ...

    async def checkpoint(self, name: str) -> int:
        """The position saved under ``name`` (e.g. ``"published"``); 0 when never saved.

        ``"projection"`` is the projection checkpoint, moved only by :meth:`commit`.
        """
        ...

    async def save_checkpoint(self, name: str, position: int) -> None:
        """Move checkpoint ``name`` forward to ``position`` (never backwards).

        Raises:
            ValueError: for ``"projection"``, which only :meth:`commit` moves.
        """
        ...

    async def idempotent_response(self, key: str) -> IdempotentResponse | None:
        """The response stored for Idempotency-Key ``key``, if any."""
        ...

    async def save_idempotent_response(self, response: IdempotentResponse) -> IdempotentResponse:
        """Store ``response`` unless its key already has one; return the one stored (first
        wins)."""
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
