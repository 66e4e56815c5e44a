"""The single writer of the inventory: batching, in-memory states, one commit per batch.

The throughput design (ARCHITECTURE.md, ADR 0003 and 0005): SKUs hash (crc32) into
``partitions``; this process owns the partitions ``p % replicas == replica_index``
(:mod:`.ownership`; with ``replicas = 1`` all of them). Every owned SKU's state lives in memory, rebuilt at start from
snapshots plus the events after them. Commands from the bus and from HTTP queue up here; the
writer takes everything waiting (up to ``batch_size``), drops message ids already processed and
duplicates within the batch, decides the rest in order against working copies, and commits the
events, the stock rows, the processed ids and the fence in ONE transaction. Only after the
commit succeeded are the new states swapped in and the callers resolved.

The fence is per replica assignment (``ownership.fence_key``): two processes started with the
same index fence each other, different indexes own disjoint SKUs and never meet. Catching up
folds only owned SKUs' events (other replicas' SKUs are never decided here).

With leases (``INVENTORY_ASSIGNMENT=leases``, ADR 0010) a batch carries no fence but a claim
of the ``(partition, epoch)`` leases of the partitions it touches (``ownership.claim``),
checked under a row lock in the commit's transaction; a batch naming a partition no longer
held is not committed (``LeaseLostError``: not retried, the partition is dropped and the
batch fails, so its messages go to the new owner).

A fence conflict (another writer committed since we last looked) or any other concurrency
error means: catch up on the events we have not seen, refresh the fence, redecide the batch.
Event ids are deterministic, so a redecided batch never applies anything twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry

from stockflow.inventory.domain.commands import Command
from stockflow.inventory.domain.model import StockState
from stockflow.inventory.service_layer.batch import (
    Outcome,
    Record,
    Submission,
    decide_batch,
    invariant_violations,
    records_of,
)
from stockflow.inventory.service_layer.committed import (
    CommittedState,
    InvariantViolationError,
    WriterStore,
)
from stockflow.inventory.service_layer.ownership import FENCE_KEY, Ownership, partition_of
from stockflow.inventory.service_layer.pipelining import Group, InFlight, StateView
from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    EventStoreUnavailableError,
    Fence,
    LeaseLostError,
)
from stockflow.inventory.service_layer.telemetry import WriterMetrics
from stockflow_kit.messaging import new_message_id

__all__ = [
    "FENCE_KEY",
    "InvariantViolationError",
    "InventoryWriter",
    "PartitionNotOwnedError",
    "WriterStoppedError",
    "partition_of",
]

_log = structlog.get_logger("stockflow.inventory")


class PartitionNotOwnedError(RuntimeError):
    """A command names a SKU of a partition this process does not own; ``owner`` does."""

    def __init__(self, sku: str, owner: int) -> None:
        super().__init__(f"{sku} is owned by inventory replica {owner}, not by this process")
        self.sku = sku
        self.owner = owner


class WriterStoppedError(RuntimeError):
    """The writer stopped before it handled the command."""


async def _was_clean(task: asyncio.Task[bool]) -> bool:
    """Whether an earlier batch committed its speculative decision verbatim."""
    try:
        return await asyncio.shield(task)
    except Exception:  # it failed: its callers were told; ours must be redone
        return False


class InventoryWriter:
    """The one writer of this process's partitions: the queue, the pipeline and the
    store-checked path over a :class:`CommittedState`. See the module docstring and ADR 0006.

    Args:
        store: The event store (log with fence, processed ids, snapshots).
        clock: The time events are stamped with.
        ownership: Which SKUs this process owns (replica ``i`` of ``n``; all of them by default).
        batch_size: Most commands decided and committed at once.
        low_stock_threshold: ``available`` below which ``LowStockDetected`` is decided.
        snapshot_every: Snapshot a SKU after this many new events (0: never).
        max_attempts: Conflicting attempts of the store-checked path before it gives up.
        pipeline_depth: Batches in flight at once (decided while earlier ones commit).
        recent_ids: How many committed message ids are remembered for in-memory dedupe.
        registry: Where the writer's metrics live.
    """

    def __init__(
        self,
        store: WriterStore,
        *,
        clock: Callable[[], datetime],
        ownership: Ownership | None = None,
        batch_size: int = 1000,
        low_stock_threshold: int = 10,
        snapshot_every: int = 500,
        max_attempts: int = 20,
        pipeline_depth: int = 2,
        recent_ids: int = 200_000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.ownership = ownership or Ownership()
        self.metrics = WriterMetrics(registry)
        self.committed = CommittedState(
            store,
            ownership=self.ownership,
            clock=clock,
            metrics=self.metrics,
            snapshot_every=snapshot_every,
            recent_ids=recent_ids,
        )
        self.store = store
        self.clock = clock
        self.batch_size = batch_size
        self.low_stock_threshold = low_stock_threshold
        self.max_attempts = max_attempts
        self.pipeline_depth = pipeline_depth
        self._queue: asyncio.Queue[Group] = asyncio.Queue()
        self._overlay: dict[str, StockState] = {}
        self._next_fence = 0
        self._speculation_broken = False
        self._task: asyncio.Task[None] | None = None

    @property
    def states(self) -> dict[str, StockState]:
        """The committed states of the owned SKUs (read only outside the writer)."""
        return self.committed.states

    @property
    def loaded(self) -> bool:
        return self.committed.loaded

    @property
    def changed(self) -> asyncio.Event:
        """Set after every commit with events (the relay waits on it)."""
        return self.committed.changed

    async def load(self) -> None:
        await self.committed.load()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="inventory-writer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().fail(WriterStoppedError("the inventory writer stopped"))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ submitting
    def enqueue(self, submission: Submission) -> asyncio.Future[Outcome]:
        """Queue one submission; its future resolves after the batch holding it committed."""
        self._check(submission)
        if submission.future is None:
            submission.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Group((submission,), None))
        return submission.future

    def enqueue_many(self, submissions: Sequence[Submission]) -> asyncio.Future[list[Outcome]]:
        """Queue a group (a consumed batch); ONE future resolves to the outcomes, in order.

        One future per group instead of one per message: profiled, per-message futures and
        their gather cost more than deciding the commands.
        """
        for submission in submissions:
            self._check(submission)
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Group(submissions, future))
        return future

    def drop_partition(self, partition: int) -> None:
        """Forget ``partition``'s states, committed and speculative (its lease is gone)."""
        for sku in self.committed.drop_partition(partition):
            self._overlay.pop(sku, None)
        partitions = self.ownership.partitions
        for sku in [sku for sku in self._overlay if partition_of(sku, partitions) == partition]:
            del self._overlay[sku]

    def _check(self, submission: Submission) -> None:
        if not self.running:
            raise WriterStoppedError("the inventory writer is not running")
        ownership = self.ownership
        if ownership.owns_all:
            return
        for sku in submission.command.skus:
            if not ownership.owns(sku):
                raise PartitionNotOwnedError(sku, ownership.owner_of(sku))

    async def submit(
        self,
        command: Command,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        traceparent: str | None = None,
        want_stock: bool = False,
        record: Record | None = None,
    ) -> Outcome:
        """Queue ``command`` and wait for its outcome (HTTP callers); ``record`` builds the
        Idempotency-Key record committed with it (see :class:`Submission`)."""
        submission = Submission(
            message_id=message_id or new_message_id(),  # time-ordered: see new_message_id
            command=command,
            correlation_id=correlation_id,
            want_stock=want_stock,
            record=record,
            traceparent=traceparent,
        )
        return await self.enqueue(submission)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Take batches off the queue until cancelled; decide one while the last commits."""
        queue = self._queue
        in_flight: list[InFlight] = []
        try:
            while True:
                groups = [await queue.get()]
                size = len(groups[0].submissions)
                while size < self.batch_size and not queue.empty():
                    group = queue.get_nowait()
                    groups.append(group)
                    size += len(group.submissions)
                in_flight = [f for f in in_flight if not f.task.done()]
                if in_flight and (
                    self._speculation_broken or len(in_flight) >= self.pipeline_depth
                ):
                    # Redone batches changed the committed states under the overlay (or
                    # the pipeline is full): let the chain drain, then start afresh.
                    await asyncio.wait([f.task for f in in_flight])
                    in_flight.clear()
                if not in_flight:
                    self._reset_speculation()
                try:
                    in_flight.append(self._admit(groups, in_flight[-1] if in_flight else None))
                except Exception as error:  # a bug in deciding must not stop the writer
                    _log.error(
                        "inventory.decide_failed",
                        size=sum(len(g.submissions) for g in groups),
                        exc_info=error,
                    )
                    self.metrics.decide_failures.labels(type(error).__name__).inc()
                    for group in groups:
                        group.fail(error)
        finally:
            for flight in in_flight:
                flight.task.cancel()

    def _reset_speculation(self) -> None:
        self._overlay.clear()
        self._next_fence = self.committed.fence_version
        self._speculation_broken = False

    def _admit(self, groups: list[Group], previous: InFlight | None) -> InFlight:
        """Decide ``groups`` on the speculative view and chain their commit after ``previous``."""
        batch = [s for group in groups for s in group.submissions]
        in_flight_ids = previous.ids if previous is not None else frozenset()
        seen: set[str] = set()
        fresh = []
        recent = self.committed.recent
        for submission in batch:
            message_id = submission.message_id
            if message_id in seen or message_id in recent or message_id in in_flight_ids:
                continue
            seen.add(message_id)
            fresh.append(submission)
        now = self.clock()
        decision = decide_batch(
            StateView(self._overlay, self.states),
            fresh,
            now=now,
            low_stock_threshold=self.low_stock_threshold,
        )
        commit = None
        ownership = self.ownership
        claim = (
            ownership.claim(sku for s in fresh for sku in s.command.skus)
            if ownership.leased
            else None
        )
        if (
            fresh
            and not invariant_violations(decision.states)
            and (claim is not None or not ownership.leased)
        ):
            commit = CommitBatch(
                events=decision.events,
                processed=[s.message_id for s in fresh],
                stock=decision.stock,
                processed_at=now,
                fence=None
                if ownership.leased
                else Fence(key=ownership.fence_key, expected_version=self._next_fence),
                idempotency=records_of(fresh, decision.outcomes),
                leases=claim,
            )
            self._next_fence += 1
            self._overlay.update(decision.states)
        flight = InFlight(groups, batch, fresh, decision, commit, frozenset(seen) | in_flight_ids)
        flight.task = asyncio.create_task(self._settle(flight, previous))
        return flight

    async def _settle(self, flight: InFlight, previous: InFlight | None) -> bool:
        """Commit ``flight``'s speculative decision if everything before it was clean; else
        redo it on the committed states. Then answer its callers."""
        clean = previous is None or await _was_clean(previous.task)
        if clean and (flight.commit is not None or not flight.fresh):
            try:
                if flight.commit is not None:
                    await self._commit_speculative(flight, flight.commit)
            except (ConcurrencyError, DuplicateEventError) as error:
                # Another writer moved the fence, or a message was processed before we knew:
                # see what was committed, then redo below on the truth.
                self.metrics.conflicts.labels(type(error).__name__).inc()
                _log.info("inventory.speculative_commit_redone", error_type=type(error).__name__)
                await self.committed.catch_up_quietly()
            except EventStoreUnavailableError:  # logged once per outage by CommittedState
                pass
            except Exception as error:  # the redo retries or reports it
                _log.warning("inventory.speculative_commit_failed", error=repr(error))
            else:
                outcomes = self._resolve(flight.submissions, dict(flight.decision.outcomes))
                self._answer(flight.groups, outcomes)
                return True
        # Not clean: an earlier batch was redone, our commit conflicted, or the decision
        # broke an invariant. Redo on committed states through the store-checked path.
        self._speculation_broken = True
        try:
            outcomes = await self.process(flight.submissions)
        except Exception as error:  # the callers learn of it; the loop goes on
            if not isinstance(error, EventStoreUnavailableError):  # else logged per outage
                _log.error(
                    "inventory.batch_failed", size=len(flight.submissions), error=repr(error)
                )
            for group in flight.groups:
                group.fail(error)
        else:
            self._answer(flight.groups, outcomes)
        return False

    async def _commit_speculative(self, flight: InFlight, commit: CommitBatch) -> None:
        states = flight.decision.states
        await self.committed.commit(commit, states, decided=len(flight.fresh))
        overlay = self._overlay
        for sku, state in states.items():
            if overlay.get(sku) is state:  # not overwritten by a later batch in flight
                del overlay[sku]

    # ------------------------------------------------------------------ store-checked path
    async def process(self, batch: Sequence[Submission]) -> list[Outcome]:
        """Decide and commit one batch on the committed states, checking the store for
        processed ids first; retried after a conflict (catch up, redecide). Resolves the
        submissions' futures and returns the outcomes in batch order."""
        unique: dict[str, Submission] = {}
        for submission in batch:
            unique.setdefault(submission.message_id, submission)
        committed = self.committed
        outcomes: dict[str, Outcome] = {}
        for attempt in range(1, self.max_attempts + 1):
            done = await self.store.processed(list(unique))
            fresh = [s for message_id, s in unique.items() if message_id not in done]
            if not fresh:
                break
            now = self.clock()
            decision = decide_batch(
                committed.states, fresh, now=now, low_stock_threshold=self.low_stock_threshold
            )
            broken = invariant_violations(decision.states)
            if broken:
                self.metrics.invariant_violations.inc(len(broken))
                _log.error("inventory.invariant_violated", states=broken[:10])
                raise InvariantViolationError("; ".join(broken[:3]))
            ownership = self.ownership
            claim = ownership.claim(sku for s in fresh for sku in s.command.skus)
            if ownership.leased and claim is None:
                raise LeaseLostError("a partition of the batch is not leased to this member")
            commit = CommitBatch(
                events=decision.events,
                processed=[s.message_id for s in fresh],
                stock=decision.stock,
                processed_at=now,
                fence=None
                if ownership.leased
                else Fence(key=ownership.fence_key, expected_version=committed.fence_version),
                idempotency=records_of(fresh, decision.outcomes),
                leases=claim,
            )
            try:
                await committed.commit(commit, decision.states, decided=len(fresh))
            except (ConcurrencyError, DuplicateEventError) as error:
                self.metrics.conflicts.labels(type(error).__name__).inc()
                _log.warning(
                    "inventory.commit_conflict",
                    attempt=attempt,
                    error_type=type(error).__name__,
                    error=str(error),
                )
                await committed.catch_up()
                continue
            outcomes = decision.outcomes
            break
        else:
            raise ConcurrencyError(f"gave up after {self.max_attempts} conflicting attempts")
        return self._resolve(batch, outcomes)

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

    @staticmethod
    def _answer(groups: Sequence[Group], outcomes: Sequence[Outcome]) -> None:
        start = 0
        for group in groups:
            end = start + len(group.submissions)
            group.resolve(outcomes[start:end])
            start = end
