"""A small stock history committed straight to an event store, as the writer would commit it
(events with the rows they fold to), for the projection rebuild tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from stockflow.inventory.domain.events import Event, StockReceived, StockReserved
from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.codec import decode_event, encode_event
from stockflow.inventory.service_layer.ports import CommitBatch, EventStore, NewEvent, StockRow

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIE = StockRow(sku="A", on_hand=40, reserved=0, version=2)
GHOST = StockRow(sku="Z", on_hand=1, reserved=0, version=1)
TRUE_A = StockRow(sku="A", on_hand=4, reserved=1, version=2)
TRUE_B = StockRow(sku="B", on_hand=2, reserved=0, version=1)


async def commit_folded(store: EventStore, events: Sequence[Event]) -> int:
    """Commit ``events`` after their streams, with the stock rows they fold to (as the writer
    does)."""
    states: dict[str, StockState] = {}
    new: list[NewEvent] = []
    for event in events:
        sku = event.sku
        state = states.get(sku)
        if state is None:
            state = StockState(sku=sku)
            for stored in await store.read_stream(sku):
                state = apply(state, decode_event(stored.type, stored.data))
        states[sku] = state = apply(state, event)
        new.append(
            NewEvent(
                stream_id=sku,
                sequence=state.version,
                event_id=uuid.uuid4(),
                type=type(event).__name__,
                data=encode_event(event),
                occurred_at=NOW,
            )
        )
    rows = [
        StockRow(sku=s.sku, on_hand=s.on_hand, reserved=s.reserved, version=s.version)
        for s in states.values()
    ]
    return await store.commit(CommitBatch(events=new, stock=rows, processed_at=NOW))


HISTORY: tuple[Event, ...] = (
    StockReceived(sku="A", qty=4),
    StockReceived(sku="B", qty=2),
    StockReserved(sku="A", order_id="o-1", qty=1),
)
