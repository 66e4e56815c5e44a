"""Pieces of the writer's pipeline: queued groups, the speculative state view, recent ids.

The writer decides batch N+1 while batch N is being committed (ADR 0006): decisions run on a
:class:`StateView` that overlays the uncommitted (speculative) states of the batches in flight
on the committed ones. Commits are chained, so they reach the store in decision order; each
expects the next fence version. A batch commits its speculative decision only if every batch
before it committed its own verbatim; otherwise it is redone on the committed states by the
writer's sequential, store-checked path. Nothing speculative is ever visible outside the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice

from stockflow.inventory.domain.model import StockState
from stockflow.inventory.service_layer.batch import BatchDecision, Outcome, Submission
from stockflow.inventory.service_layer.ports import CommitBatch

__all__ = ["Group", "InFlight", "RecentIds", "StateView"]


@dataclass(slots=True, eq=False)
class Group:
    """Submissions queued together; ``future`` (if any) gets their outcomes, in order."""

    submissions: Sequence[Submission]
    future: asyncio.Future[list[Outcome]] | None

    def fail(self, error: BaseException) -> None:
        for submission in self.submissions:
            if submission.future is not None and not submission.future.done():
                submission.future.set_exception(error)
        if self.future is not None and not self.future.done():
            self.future.set_exception(error)

    def resolve(self, outcomes: Sequence[Outcome]) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(list(outcomes))


class StateView(Mapping[str, StockState]):
    """The speculative states of the batches in flight over the committed ones (read only)."""

    __slots__ = ("base", "overlay")

    def __init__(self, overlay: dict[str, StockState], base: dict[str, StockState]) -> None:
        self.overlay = overlay
        self.base = base

    def __getitem__(self, sku: str) -> StockState:
        state = self.overlay.get(sku)
        return state if state is not None else self.base[sku]

    def get(self, sku: str, default: StockState | None = None) -> StockState | None:  # type: ignore[override]
        # Overridden because Mapping.get goes through __getitem__ and a KeyError: this runs
        # once per SKU per command on the hot path.
        state = self.overlay.get(sku)
        if state is not None:
            return state
        return self.base.get(sku, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.base.keys() | self.overlay.keys())

    def __len__(self) -> int:
        return len(self.base.keys() | self.overlay.keys())


class RecentIds:
    """Ids of messages this writer committed recently, oldest evicted first.

    A hit proves the message was processed; a miss proves nothing (older ids, other writers):
    the store's unique processed-id constraint stays the guard, and a batch that trips it is
    redone on the store-checked path.
    """

    __slots__ = ("_capacity", "_ids")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ids: dict[str, None] = {}

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add_all(self, message_ids: Sequence[str]) -> None:
        ids = self._ids
        ids.update(dict.fromkeys(message_ids))
        excess = len(ids) - self._capacity
        if excess > 0:
            # Dicts keep insertion order: the first ids are the oldest. Only those are read:
            # copying all of them to find the oldest cost ~10 ms a batch once full (200,000).
            for stale in list(islice(ids, excess)):
                del ids[stale]


@dataclass(slots=True, eq=False)
class InFlight:
    """One admitted batch: its groups, its speculative decision and its commit task.

    ``fresh`` are the submissions decided (the others are duplicates of committed or
    in-flight messages). The task returns ``True`` when the speculative decision was
    committed verbatim ("clean"), ``False`` when the batch had to be redone.
    """

    groups: Sequence[Group]
    submissions: Sequence[Submission]
    fresh: Sequence[Submission]
    decision: BatchDecision
    commit: CommitBatch | None
    ids: frozenset[str]
    task: asyncio.Task[bool] = field(init=False)
