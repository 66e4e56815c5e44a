"""The values the inventory's store ports exchange, and the errors they raise.

Kept apart from :mod:`.ports` (the protocols, and the error tree in its docstring), which
re-exports every name here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from stockflow_kit.http import IdempotencyRecord as KitIdempotencyRecord

__all__ = [
    "CommitBatch",
    "ConcurrencyError",
    "DuplicateEventError",
    "DuplicateMessageError",
    "EventStoreError",
    "EventStoreUnavailableError",
    "Fence",
    "IdempotencyRecord",
    "LeaseClaim",
    "LeaseLostError",
    "NewEvent",
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


class LeaseLostError(EventStoreError):
    """A partition the batch writes is no longer leased to this member at the epoch it
    claimed (released, expired and taken over): nothing was committed. Not retried: the writer
    drops the partitions and the batch fails (its messages are redelivered to the new owner)."""

    def __init__(self, message: str, partitions: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.partitions = tuple(partitions)


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
    traceparent: str | None = None
    """The W3C trace context of the work that wrote it: the relay publishes it in that trace."""


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
    traceparent: str | None = None
    """The W3C trace context of the work that wrote it: the relay publishes it in that trace."""


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


class LeaseClaim(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Commit only if ``member`` still holds every ``(partition, epoch)`` lease named (checked
    under a row lock in the commit's transaction; ADR 0010). The dynamic mode's fence."""

    member: str
    held: tuple[tuple[int, int], ...]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A stream's encoded state after ``version`` events."""

    stream_id: str
    version: int
    state: bytes


IdempotencyRecord = KitIdempotencyRecord
"""The answer first given to a request with an Idempotency-Key (the kit's record: ``scope``,
``key``, ``request_hash``, ``status``, ``body``, ``media_type``, ``created_at``)."""


class CommitBatch(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Everything one batch writes, atomically.

    Attributes:
        events: New events of any number of streams. Per stream the sequences must be
            consecutive and follow the stream's current version.
        processed: Ids of the messages this batch handled, recorded at ``processed_at``.
        stock: Projection rows to upsert: one per SKU the events touched, folded up to them.
            The store upserts every row it is given. (Meant: a SKU whose stream holds
            nothing but ``ReservationRejected`` has no stock and gets no row, so the read side
            answers 404 for it; the writer, ``views.fold_stock`` and the auditor's fold
            still give it a 0/0 row, to be changed together.)
        processed_at: When the batch was processed (``prune_processed`` compares with it).
        fence: The partition fence to check and move, if any.
        leases: The partition leases the batch must still hold (dynamic assignment), if any.
        idempotency: Responses to store with the effect they answer, first wins: a record
            whose ``(scope, key)`` is already stored (or earlier in this batch) is skipped,
            never an error. Default: none.
    """

    events: Sequence[NewEvent] = ()
    processed: Sequence[str] = ()
    stock: Sequence[StockRow] = ()
    processed_at: datetime
    fence: Fence | None = None
    idempotency: Sequence[IdempotencyRecord] = ()
    leases: LeaseClaim | None = None
