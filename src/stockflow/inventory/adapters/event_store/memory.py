"""``InMemoryEventStore``: the event store for unit tests, held in plain Python containers.

It honours the same contract as the SQLite and PostgreSQL stores (the contract suite proves
it): a batch is checked completely before anything changes, so a failing commit leaves no trace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from stockflow.inventory.adapters.event_store.batches import last_row_per_sku, stream_ranges
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    DuplicateMessageError,
    IdempotencyRecord,
    Lease,
    LeaseLostError,
    Member,
    Snapshot,
    StaleFenceError,
    StockRow,
    StoredEvent,
)

__all__ = ["InMemoryEventStore"]

PROJECTION = "projection"


class InMemoryEventStore:
    def __init__(self) -> None:
        self._events: list[StoredEvent] = []
        self._streams: dict[str, list[StoredEvent]] = {}
        self._event_ids: set[uuid.UUID] = set()
        self._processed: dict[str, datetime] = {}
        self._stock: dict[str, StockRow] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._fences: dict[str, int] = {}
        self._checkpoint = 0
        self._named: dict[str, int] = {}
        self._records: dict[tuple[str, str], IdempotencyRecord] = {}
        self._leases: dict[int, tuple[str | None, int, float]] = {}
        """partition -> (owner, epoch, expires at: ``time.monotonic``)."""
        self._members: dict[str, tuple[str, float]] = {}
        self.lease_commits: list[tuple[int, int, str, int, int]] = []
        """(partition, epoch, member, first position, last position) per committed batch."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def commit(self, batch: CommitBatch) -> int:
        self._check(batch)
        for message_id in batch.processed:
            self._processed[message_id] = batch.processed_at
        if batch.fence is not None:
            self._fences[batch.fence.key] = batch.fence.expected_version + 1
        position = self._events[-1].position if self._events else 0
        for new in batch.events:
            position += 1
            stored = StoredEvent(
                position=position,
                stream_id=new.stream_id,
                sequence=new.sequence,
                event_id=new.event_id,
                type=new.type,
                data=new.data,
                occurred_at=new.occurred_at,
                correlation_id=new.correlation_id,
                causation_id=new.causation_id,
                traceparent=new.traceparent,
            )
            self._events.append(stored)
            self._streams.setdefault(new.stream_id, []).append(stored)
            self._event_ids.add(new.event_id)
        for row in batch.stock:
            self._stock[row.sku] = row
        for record in batch.idempotency:
            self._records.setdefault((record.scope, record.key), record)
        if batch.events:
            if batch.leases is not None:
                first = position - len(batch.events) + 1
                for partition, epoch in batch.leases.held:
                    self.lease_commits.append(
                        (partition, epoch, batch.leases.member, first, position)
                    )
            self._checkpoint = position
        return self._checkpoint

    # leases: the LeaseStore role
    async def ensure_partitions(self, partitions: Collection[int]) -> None:
        for partition in partitions:
            self._leases.setdefault(partition, (None, 0, 0.0))

    async def heartbeat(self, member: str, url: str, ttl: float) -> list[Member]:
        now = time.monotonic()
        self._members[member] = (url, now + ttl)
        return [
            Member(m, url) for m, (url, expires) in sorted(self._members.items()) if expires > now
        ]

    async def leave(self, member: str) -> None:
        self._members.pop(member, None)

    async def leases(self) -> list[Lease]:
        now = time.monotonic()
        return [
            Lease(p, owner, epoch, expires > now)
            for p, (owner, epoch, expires) in sorted(self._leases.items())
        ]

    async def acquire(self, partition: int, member: str, ttl: float) -> int | None:
        owner, epoch, expires = self._leases[partition]
        now = time.monotonic()
        if owner is not None and expires > now:
            return None
        self._leases[partition] = (member, epoch + 1, now + ttl)
        return epoch + 1

    async def renew(self, member: str, ttl: float) -> dict[int, int]:
        until = time.monotonic() + ttl
        mine = {p: e for p, (owner, e, _) in self._leases.items() if owner == member}
        for partition, epoch in mine.items():
            self._leases[partition] = (member, epoch, until)
        return mine

    async def release(self, partition: int, member: str, epoch: int) -> bool:
        owner, current, _ = self._leases.get(partition, (None, 0, 0.0))
        if owner != member or current != epoch:
            return False
        self._leases[partition] = (None, epoch, time.monotonic())
        return True

    def _check(self, batch: CommitBatch) -> None:
        claim = batch.leases
        if claim is not None:
            lost = [
                p
                for p, epoch in claim.held
                if self._leases.get(p, (None, 0, 0.0))[:2] != (claim.member, epoch)
            ]
            if lost:
                raise LeaseLostError(f"{claim.member} no longer holds partitions {lost}", lost)
        fence = batch.fence
        if fence is not None and self._fences.get(fence.key, 0) != fence.expected_version:
            raise StaleFenceError(f"fence {fence.key!r} is not at {fence.expected_version}")
        for stream_id, (first, _) in stream_ranges(batch.events).items():
            current = len(self._streams.get(stream_id, ()))
            if first != current + 1:
                raise ConcurrencyError(f"{stream_id}: expected {current + 1}, got {first}")
        event_ids = [new.event_id for new in batch.events]
        if len(set(event_ids)) != len(event_ids) or not self._event_ids.isdisjoint(event_ids):
            raise DuplicateEventError("an event id of the batch is already stored")
        processed = batch.processed
        if len(set(processed)) != len(processed) or any(m in self._processed for m in processed):
            raise DuplicateMessageError("a message id of the batch is already processed")

    async def read_stream(
        self, stream_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        # Sequences are 1, 2, …, so sequence n sits at index n - 1.
        events = self._streams.get(stream_id, [])[max(after, 0) :]
        return events if limit is None else events[:limit]

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        # Positions are 1, 2, … without gaps here.
        return self._events[max(after_position, 0) : max(after_position, 0) + limit]

    async def stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def stream_versions(self) -> dict[str, int]:
        return {stream_id: len(events) for stream_id, events in self._streams.items() if events}

    async def processed(self, message_ids: Collection[str]) -> set[str]:
        return {m for m in message_ids if m in self._processed}

    async def prune_processed(self, older_than: datetime) -> int:
        expired = [m for m, at in self._processed.items() if at < older_than]
        for message_id in expired:
            del self._processed[message_id]
        return len(expired)

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        for snapshot in snapshots:
            self._snapshots[snapshot.stream_id] = snapshot

    async def load_snapshots(self) -> list[Snapshot]:
        return list(self._snapshots.values())

    async def get_stock(self, sku: str) -> StockRow | None:
        return self._stock.get(sku)

    async def all_stock(self) -> list[StockRow]:
        return [self._stock[sku] for sku in sorted(self._stock)]

    async def projection_checkpoint(self) -> int:
        return self._checkpoint

    async def fence_version(self, key: str) -> int:
        return self._fences.get(key, 0)

    async def checkpoint(self, name: str) -> int:
        if name == PROJECTION:
            return self._checkpoint
        return self._named.get(name, 0)

    async def save_checkpoint(self, name: str, position: int) -> None:
        if name == PROJECTION:
            raise ValueError("the projection checkpoint moves only with a commit")
        self._named[name] = max(self._named.get(name, 0), position)

    async def replace_stock(self, rows: Sequence[StockRow], *, checkpoint: int) -> None:
        last = self._events[-1].position if self._events else 0
        if last > checkpoint:
            raise ConcurrencyError(f"the log holds events after position {checkpoint}")
        if checkpoint > last:
            raise ValueError(f"position {checkpoint} is beyond the log's last ({last})")
        self._stock = {row.sku: row for row in last_row_per_sku(rows)}
        self._checkpoint = checkpoint

    async def get(self, scope: str, key: str) -> IdempotencyRecord | None:
        return self._records.get((scope, key))

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        return self._records.setdefault((record.scope, record.key), record)

    async def prune(self, older_than: float) -> int:
        expired = [k for k, record in self._records.items() if record.created_at < older_than]
        for scope_key in expired:
            del self._records[scope_key]
        return len(expired)
