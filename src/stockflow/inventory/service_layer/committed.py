"""The committed side of the inventory writer: the states of the owned SKUs as the store has
them, how they are loaded and caught up, and the ONE path by which a batch is committed.

:class:`~stockflow.inventory.service_layer.writer.InventoryWriter` holds a
:class:`CommittedState` and adds the queue and the pipeline (ADR 0006); both its plain
(store-checked) and its pipelined path commit through :meth:`CommittedState.commit`, so the
metrics, the state swap, the fence, the recent ids, the relay's wake-up and the snapshots
follow every commit the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime

import structlog

from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.codec import decode_event, decode_state, encode_state
from stockflow.inventory.service_layer.ownership import Ownership, partition_of
from stockflow.inventory.service_layer.pipelining import RecentIds
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    EventStore,
    EventStoreUnavailableError,
    LeaseLostError,
    Snapshot,
)
from stockflow.inventory.service_layer.telemetry import WriterMetrics

__all__ = ["CommittedState", "InvariantViolationError", "WriterStore"]

_log = structlog.get_logger("stockflow.inventory")


class InvariantViolationError(RuntimeError):
    """A batch would leave a state that breaks an invariant; it was not committed."""


WriterStore = EventStore
"""What the writer needs of the event store: the log with the fence, the processed ids (on
the store-checked path) and snapshots."""


class CommittedState:
    """Committed states of the SKUs ``ownership`` assigns to this process."""

    def __init__(
        self,
        store: WriterStore,
        *,
        ownership: Ownership,
        clock: Callable[[], datetime],
        metrics: WriterMetrics,
        snapshot_every: int = 500,
        recent_ids: int = 200_000,
    ) -> None:
        self.store = store
        self.ownership = ownership
        self.clock = clock
        self.metrics = metrics
        self.snapshot_every = snapshot_every
        self.states: dict[str, StockState] = {}
        self.position = 0
        self.fence_version = 0
        self.loaded = False
        self.changed = asyncio.Event()
        """Set after every commit with events (the relay waits on it)."""
        self.recent = RecentIds(recent_ids)
        self.storage_failure: str | None = None
        """Why the last commit could not reach the storage (``None`` once one succeeded)."""
        self._failed_at = 0.0
        self._since_snapshot: dict[str, int] = {}

    def storage_failed(self, error: BaseException) -> None:
        """Remember a storage failure; logged once per transition, not once per batch."""
        if self.storage_failure is None:
            _log.error("inventory.storage_failed", cause=str(error))
        self.storage_failure = str(error)
        self._failed_at = time.monotonic()

    def recent_storage_failure(self, window: float) -> str | None:
        """The storage failure of a commit within the last *window* seconds, if any."""
        if self.storage_failure is None or time.monotonic() - self._failed_at > window:
            return None
        return self.storage_failure

    def storage_recovered(self) -> None:
        if self.storage_failure is not None:
            _log.info("inventory.storage_recovered", cause=self.storage_failure)
            self.storage_failure = None

    @property
    def fence_key(self) -> str:
        return self.ownership.fence_key

    async def load(self) -> None:
        """Rebuild every owned state from its snapshot and its stream's events after it, then
        fold whatever was committed meanwhile: the log is not read from its start."""
        started = time.perf_counter()
        self.states = {}
        # Read before the streams: an event at or below it is committed, so the per-stream
        # reads below see it; one above it is folded by catch_up (which skips what they saw).
        self.position = await self.store.projection_checkpoint()
        applied = 0
        if not self.ownership.leased:  # leased: nothing is owned yet (load_partitions folds)
            applied = await self._fold_streams()
        applied += await self.catch_up(progress=True)
        self.loaded = True
        _log.info(
            "inventory.writer_loaded",
            skus=len(self.states),
            events_applied=applied,
            position=self.position,
            fence_version=self.fence_version,
            seconds=round(time.perf_counter() - started, 3),
        )

    async def _fold_streams(self) -> int:
        """Each owned stream's snapshot and the events after it; returns the events applied."""
        owns = self.ownership.owns
        states = self.states
        for snapshot in await self.store.load_snapshots():
            if owns(snapshot.stream_id):
                states[snapshot.stream_id] = decode_state(snapshot.state)
        applied = 0
        for sku, version in (await self.store.stream_versions()).items():
            if not owns(sku):
                continue
            state = states.get(sku) or StockState(sku=sku)
            while state.version < version:
                events = await self.store.read_stream(sku, after=state.version, limit=5000)
                if not events:
                    break
                for stored in events:
                    if stored.sequence != state.version + 1:
                        raise ConcurrencyError(
                            f"{sku}: event {stored.sequence} after {state.version}"
                        )
                    state = apply(state, decode_event(stored.type, stored.data))
                applied += len(events)
            states[sku] = state
        return applied

    async def commit(
        self, commit: CommitBatch, states: Mapping[str, StockState], *, decided: int
    ) -> None:
        """Commit *commit* (the events of *states*, *decided* fresh commands), then make it
        the committed truth: states, fence, recent ids, position, metrics, snapshots.

        Raises whatever the store raises; nothing is changed here then.
        """
        started = time.perf_counter()
        try:
            checkpoint = await self.store.commit(commit)
        except EventStoreUnavailableError as error:
            self.storage_failed(error)
            raise
        except LeaseLostError as error:  # taken over: never decide on those SKUs again
            self.metrics.conflicts.labels(type(error).__name__).inc()
            _log.warning("inventory.commit_lease_lost", partitions=list(error.partitions))
            self.ownership.lost(error.partitions)
            raise
        self.storage_recovered()
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(decided)
        self.metrics.events.inc(len(commit.events))
        self.states.update(states)
        if commit.fence is not None:
            self.fence_version = commit.fence.expected_version + 1
        self.recent.add_all(commit.processed)
        if commit.events:
            self.position = checkpoint
            self.changed.set()
            await self._snapshot_if_due(event.stream_id for event in commit.events)

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

    async def load_partitions(self, partitions: Collection[int]) -> int:
        """Fold the SKUs of ``partitions`` from the store (snapshots, then each one's events
        after them) into the states, before they are decided on here (ADR 0010).

        The SKUs are the streams of the log (:meth:`EventLog.stream_versions`, so a stream
        without a projection row or a snapshot is found too), read once for all the
        partitions acquired at once. Returns the events applied.
        """
        count = self.ownership.partitions
        wanted = set(partitions)
        snapshots = {
            s.stream_id: decode_state(s.state)
            for s in await self.store.load_snapshots()
            if partition_of(s.stream_id, count) in wanted
        }
        skus = set(snapshots) | {
            sku for sku in await self.store.stream_versions() if partition_of(sku, count) in wanted
        }
        applied = 0
        for sku in sorted(skus):
            state = snapshots.get(sku) or StockState(sku=sku)
            while events := await self.store.read_stream(sku, after=state.version, limit=5000):
                for stored in events:
                    state = apply(state, decode_event(stored.type, stored.data))
                applied += len(events)
            self.states[sku] = state
            self._since_snapshot.pop(sku, None)
        return applied

    def drop_partition(self, partition: int) -> list[str]:
        """Forget the states of ``partition``'s SKUs (it is no longer ours); return them."""
        partitions = self.ownership.partitions
        gone = [sku for sku in self.states if partition_of(sku, partitions) == partition]
        for sku in gone:
            del self.states[sku]
            self._since_snapshot.pop(sku, None)
        return gone

    async def catch_up(self, *, progress: bool = False) -> int:
        """Fold the events committed after ``position`` (by anyone) into the owned states."""
        self.fence_version = await self.store.fence_version(self.fence_key)
        states = self.states
        ownership = self.ownership
        owns_all = ownership.owns_all
        applied = 0
        while events := await self.store.read_all(after_position=self.position, limit=5000):
            for stored in events:
                sku = stored.stream_id
                if not owns_all and not ownership.owns(sku):
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

    async def catch_up_quietly(self) -> None:
        try:
            await self.catch_up()
        except Exception as error:  # the redo's own attempts will meet it again and report it
            _log.warning("inventory.catch_up_failed", error=repr(error))
