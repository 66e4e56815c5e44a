"""The read side: the stock projection, and its rebuild from the event log with the domain's fold.

The live projection rows are committed with their events (same transaction). :func:`fold_stock`
re-derives them from scratch, so that :func:`check_projection` can prove the two agree and
:func:`rebuild_projection` can replace a projection that lies.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.codec import decode_event
from stockflow.inventory.service_layer.ports import EventLog, StockProjection, StockRow

__all__ = [
    "FoldedStock",
    "ProjectedLog",
    "check_projection",
    "fold_stock",
    "rebuild_projection",
    "rebuild_stock",
]


class ProjectedLog(EventLog, StockProjection, Protocol):
    """A store with both the event log and the stock projection (what a rebuild needs)."""


class FoldedStock(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The stock rows folded from every event up to ``position`` (0: the log was empty)."""

    rows: list[StockRow]
    position: int


async def fold_stock(log: EventLog, *, page: int = 5000) -> FoldedStock:
    """Fold every event from position 0 with the domain's ``apply``; rows ordered by SKU.

    ``position`` is the last position read: the rows are exactly the fold of the events up
    to it, even if a writer commits more while this reads.
    """
    states: dict[str, StockState] = {}
    position = 0
    while events := await log.read_all(after_position=position, limit=page):
        for stored in events:
            sku = stored.stream_id
            states[sku] = apply(
                states.get(sku) or StockState(sku=sku), decode_event(stored.type, stored.data)
            )
        position = events[-1].position
    rows = [
        StockRow(sku=s.sku, on_hand=s.on_hand, reserved=s.reserved, version=s.version)
        for s in sorted(states.values(), key=lambda s: s.sku)
        if s.has_stock  # a stream of rejections only has no stock row
    ]
    return FoldedStock(rows=rows, position=position)


async def rebuild_stock(log: EventLog, *, page: int = 5000) -> list[StockRow]:
    """The rows of :func:`fold_stock`, ordered by SKU."""
    return (await fold_stock(log, page=page)).rows


async def rebuild_projection(store: ProjectedLog, *, page: int = 5000) -> FoldedStock:
    """Replace the whole stock projection by the fold of the log, with its checkpoint.

    Meant for a stopped service. If a writer commits meanwhile, the store refuses the
    replacement (``ConcurrencyError``) rather than set a checkpoint that hides the new events,
    and the old projection stays.

    Returns:
        What was written: the rows and the checkpoint (the last position folded).

    Raises:
        ConcurrencyError: events were committed after the fold's last position.
    """
    folded = await fold_stock(store, page=page)
    await store.replace_stock(folded.rows, checkpoint=folded.position)
    return folded


async def check_projection(store: ProjectedLog) -> list[tuple[StockRow | None, StockRow | None]]:
    """The SKUs whose live projection row differs from the rebuilt one (empty: all agree)."""
    live = {row.sku: row for row in await store.all_stock()}
    rebuilt = {row.sku: row for row in await rebuild_stock(store)}
    return [
        (live.get(sku), rebuilt.get(sku))
        for sku in sorted(live.keys() | rebuilt.keys())
        if live.get(sku) != rebuilt.get(sku)
    ]
