"""The read side: the stock projection, and its rebuild from the event log with the domain's fold.

The live projection rows are committed with their events (same transaction). :func:`rebuild_stock`
re-derives them from scratch so a check can prove the two agree.
"""

from __future__ import annotations

from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.codec import decode_event
from stockflow.inventory.service_layer.ports import EventStore, StockRow

__all__ = ["check_projection", "rebuild_stock"]


async def rebuild_stock(store: EventStore, *, page: int = 5000) -> list[StockRow]:
    """Fold every event from position 0 with the domain's ``apply``; rows ordered by SKU."""
    states: dict[str, StockState] = {}
    position = 0
    while events := await store.read_all(after_position=position, limit=page):
        for stored in events:
            sku = stored.stream_id
            states[sku] = apply(
                states.get(sku) or StockState(sku=sku), decode_event(stored.type, stored.data)
            )
        position = events[-1].position
    return [
        StockRow(sku=s.sku, on_hand=s.on_hand, reserved=s.reserved, version=s.version)
        for s in sorted(states.values(), key=lambda s: s.sku)
    ]


async def check_projection(store: EventStore) -> list[tuple[StockRow | None, StockRow | None]]:
    """The SKUs whose live projection row differs from the rebuilt one (empty: all agree)."""
    live = {row.sku: row for row in await store.all_stock()}
    rebuilt = {row.sku: row for row in await rebuild_stock(store)}
    return [
        (live.get(sku), rebuilt.get(sku))
        for sku in sorted(live.keys() | rebuilt.keys())
        if live.get(sku) != rebuilt.get(sku)
    ]
