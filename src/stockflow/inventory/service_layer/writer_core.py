"""The committed side of the inventory writer: states, loading, catching up, the sequential
store-checked path and snapshots.

:class:`~stockflow.inventory.service_layer.partitions.InventoryWriter` adds the queue and the
pipeline on top (ADR 0006); everything here works on committed states only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry

from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.batch import (
    Outcome,
    Submission,
    decide_batch,
    invariant_violations,
)
from stockflow.inventory.service_layer.codec import decode_event, decode_state, encode_state
from stockflow.inventory.service_layer.ownership import Ownership, partition_of
from stockflow.inventory.service_layer.pipelining import RecentIds
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    Fence,
    Snapshot,
)
from stockflow.inventory.service_layer.telemetry import WriterMetrics

__all__ = ["InvariantViolationError", "WriterCore"]

_log = structlog.get_logger("stockflow.inventory")


class InvariantViolationError(RuntimeError):
    """A batch would leave a state that breaks an invariant; it was not committed."""


class WriterCore:
    """Committed states of the owned SKUs and the store-checked way to change them."""

    def __init__(
        self,
        store: EventStore,
        *,
        clock: Callable[[], datetime],
        partitions: int = 16,
        replicas: int = 1,
        replica_index: int = 0,
        batch_size: int = 1000,
        low_stock_threshold: int = 10,
        snapshot_every: int = 500,
        max_attempts: int = 20,
        recent_ids: int = 200_000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.partitions = partitions
        self.ownership = Ownership(partitions, replicas, replica_index)
        self.owned = frozenset(p for p in range(partitions) if p % replicas == replica_index)
        self._owns_all = len(self.owned) == partitions
        self.fence_key = self.ownership.fence_key
        self.batch_size = batch_size
        self.low_stock_threshold = low_stock_threshold
        self.snapshot_every = snapshot_every
        self.max_attempts = max_attempts
        self.metrics = WriterMetrics(registry)
        self.states: dict[str, StockState] = {}
        self.position = 0
        self.fence_version = 0
        self.loaded = False
        self.committed = asyncio.Event()
        """Set after every commit with events (the relay waits on it)."""
        self._since_snapshot: dict[str, int] = {}
        self._recent = RecentIds(recent_ids)

    async def load(self) -> None:
        """Rebuild every state from the snapshots and the events after them."""
        started = time.perf_counter()
        self.states = {
            s.stream_id: decode_state(s.state)
            for s in await self.store.load_snapshots()
            if self._owns_all or self.owns(s.stream_id)
        }
        self.position = 0
        applied = await self._catch_up(progress=True)
        self.loaded = True
        _log.info(
            "inventory.writer_loaded",
            skus=len(self.states),
            events_applied=applied,
            position=self.position,
            fence_version=self.fence_version,
            seconds=round(time.perf_counter() - started, 3),
        )

    def owns(self, sku: str) -> bool:
        return partition_of(sku, self.partitions) in self.owned

    async def process(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Decide and commit one batch, resolve its submissions' futures, and return the
        outcomes in batch order (see the module docstring)."""
        unique: dict[str, Submission] = {}
        for submission in batch:
            unique.setdefault(submission.message_id, submission)
        outcomes: dict[str, Outcome] = {}
        for attempt in range(1, self.max_attempts + 1):
            done = await self.store.processed(list(unique))
            fresh = [s for message_id, s in unique.items() if message_id not in done]
            if not fresh:
                break
            now = self.clock()
            decision = decide_batch(
                self.states, fresh, now=now, low_stock_threshold=self.low_stock_threshold
            )
            broken = invariant_violations(decision.states)
            if broken:
                self.metrics.invariant_violations.inc(len(broken))
                _log.error("inventory.invariant_violated", states=broken[:10])
                raise InvariantViolationError("; ".join(broken[:3]))
            commit = CommitBatch(
                events=decision.events,
                processed=[s.message_id for s in fresh],
                stock=decision.stock,
                processed_at=now,
                fence=Fence(key=self.fence_key, expected_version=self.fence_version),
            )
            started = time.perf_counter()
            try:
                checkpoint = await self.store.commit(commit)
            except (ConcurrencyError, DuplicateEventError) as error:
                self.metrics.conflicts.labels(type(error).__name__).inc()
                _log.warning(
                    "inventory.commit_conflict",
                    attempt=attempt,
                    error_type=type(error).__name__,
                    error=str(error),
                )
                await self._catch_up()
                continue
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
            self.metrics.batch_size.observe(len(fresh))
            self.metrics.events.inc(len(decision.events))
            self.states.update(decision.states)
            self.fence_version += 1
            self._recent.add_all(commit.processed)
            if decision.events:
                self.position = checkpoint
                self.committed.set()
            outcomes = decision.outcomes
            break
        else:
            raise ConcurrencyError(f"gave up after {self.max_attempts} conflicting attempts")
        touched = [event.sku for outcome in outcomes.values() for event in outcome.events]
        resolved = self._resolve(batch, outcomes)
        if touched:
            await self._snapshot_if_due(touched)
        return resolved

    def _resolve(self, batch: Sequence[Submission], outcomes: dict[str, Outcome]) -> list[Outcome]:
        tally: dict[str, int] = {}
        resolved = []
        for submission in batch:
            outcome = outcomes.pop(submission.message_id, None) or Outcome(
                submission.message_id, "duplicate"
            )
            resolved.append(outcome)
            tally[outcome.status] = tally.get(outcome.status, 0) + 1
            if outcome.error is not None:
                _log.info(
                    "inventory.command_rejected",
                    message_id=submission.message_id,
                    error=str(outcome.error),
                )
            future = submission.future
            if future is not None and not future.done():
                future.set_result(outcome)
        for status, count in tally.items():  # one labelled increment per status, not per command
            self.metrics.commands.labels(status).inc(count)
        return resolved

    async def _snapshot_if_due(self, touched: Iterable[str]) -> None:
        if self.snapshot_every <= 0:
            return
        due: list[Snapshot] = []
        since = self._since_snapshot
        for sku in touched:
            count = since.get(sku, 0) + 1
            if count >= self.snapshot_every:
                state = self.states[sku]
                due.append(
                    Snapshot(stream_id=sku, version=state.version, state=encode_state(state))
                )
                count = 0
            since[sku] = count
        if not due:
            return
        try:
            await self.store.save_snapshots(due)
        except Exception as error:  # the batch is committed: a snapshot is only an optimisation
            _log.warning("inventory.snapshot_failed", skus=len(due), error=repr(error))
            for snapshot in due:  # try again on the SKU's next event
                since[snapshot.stream_id] = self.snapshot_every - 1

    async def _catch_up(self, *, progress: bool = False) -> int:
        """Fold the events committed after ``position`` (by anyone) into the states."""
        self.fence_version = await self.store.fence_version(self.fence_key)
        states = self.states
        owns_all = self._owns_all
        applied = 0
        while events := await self.store.read_all(after_position=self.position, limit=5000):
            for stored in events:
                sku = stored.stream_id
                if not owns_all and not self.owns(sku):
                    continue  # another replica's SKU: never decided here
                state = states.get(sku) or StockState(sku=sku)
                if stored.sequence <= state.version:
                    continue  # already in a snapshot, or already applied
                if stored.sequence != state.version + 1:
                    raise ConcurrencyError(f"{sku}: event {stored.sequence} after {state.version}")
                states[sku] = apply(state, decode_event(stored.type, stored.data))
                applied += 1
            self.position = events[-1].position
            if progress and applied and applied % 100_000 < len(events):
                _log.info(
                    "inventory.writer_loading", events_applied=applied, position=self.position
                )
        return applied

    async def _catch_up_quietly(self) -> None:
        try:
            await self._catch_up()
        except Exception as error:  # the redo's own attempts will meet it again and report it
            _log.warning("inventory.catch_up_failed", error=repr(error))
