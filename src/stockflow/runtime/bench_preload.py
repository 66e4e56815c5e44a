"""``stockflow bench events --preload N``: a log that already holds N events, written fast.

The history goes through the inventory's own event store (``event_store_for``) and its own
encoder, in big batches of its ordinary ``commit`` (one ``executemany`` per table on SQLite,
binary ``COPY`` on PostgreSQL), so the worker then starts on rows exactly like those it writes
itself: events, one processed id per command, the stock projection and a snapshot per SKU
(the worker snapshots every few hundred events, so it loads from snapshots, as a long-lived
one would).

The history is made of cycles on the workload's SKUs (80 % of them on the hot 20 %, as the
workload): receive 10, reserve 3 for a fresh order, ship it (two cycles in three) or release
it, then adjust the rest away. Each cycle leaves the SKU at 0 on hand, 0 reserved, so the
workload that follows meets the stock its reference model assumes. The events and the
processed ids are stamped an hour before the run (well inside the processed-id retention),
so the worker keeps them all, as after a busy day.

This lives in the runtime because it needs the inventory's store and the bench may not
import a service; the bench gets it as a callable (``EventsBenchConfig.preload``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from stockflow.bench.backends import Preloaded
from stockflow.bench.workload import HISTORY_EPOCH_MS, ordered_id
from stockflow.inventory.bootstrap import event_store_for
from stockflow.inventory.domain.events import (
    Event,
    ReservationReleased,
    StockAdjusted,
    StockReceived,
    StockReserved,
    StockShipped,
)
from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.codec import encode_event, encode_state
from stockflow.inventory.service_layer.ports import CommitBatch, NewEvent, Snapshot, StockRow

__all__ = ["PRELOAD_BATCH", "preload_inventory"]

PRELOAD_BATCH: Final = 20_000
"""Events per commit of the preload (the store's bulk path: one transaction each)."""
_HOT_SHARE: Final = 0.2
_HOT_TRAFFIC: Final = 0.8
_AGE: Final = timedelta(hours=1)


def _cycle(sku: str, order_id: str, ship: bool) -> list[Event]:
    settle: Event = (
        StockShipped(sku=sku, order_id=order_id, qty=3)
        if ship
        else ReservationReleased(sku=sku, order_id=order_id, qty=3)
    )
    return [
        StockReceived(sku=sku, qty=10, reference=f"preload {order_id}"),
        StockReserved(sku=sku, order_id=order_id, qty=3),
        settle,
        StockAdjusted(sku=sku, delta=-7 if ship else -10, reason="preload"),
    ]


async def preload_inventory(
    event_store_url: str,
    *,
    events: int,
    skus: Sequence[str],
    seed: int,
    say: Callable[[str], None],
) -> Preloaded:
    """Write about *events* events (whole cycles of 4) of history into the store at
    *event_store_url*; return what the bench needs to tell the run's rows from them."""
    rng = random.Random(seed ^ 0x5EED)
    hot = list(skus[: max(1, int(len(skus) * _HOT_SHARE))])
    cold = list(skus[len(hot) :]) or hot
    at = datetime.now(UTC) - _AGE
    store = event_store_for(event_store_url)
    await store.start()
    states: dict[str, StockState] = {}
    written = processed = cycles = commands = last_position = 0
    started = last_report = time.perf_counter()
    try:
        while written < events:
            new: list[NewEvent] = []
            ids: list[str] = []
            touched: dict[str, StockState] = {}
            while len(new) < PRELOAD_BATCH and written + len(new) < events:
                cycles += 1
                pool = hot if rng.random() < _HOT_TRAFFIC else cold
                sku = pool[rng.randrange(len(pool))]
                state = states.get(sku) or StockState(sku=sku)
                for event in _cycle(sku, f"preload-{cycles:09d}", rng.random() < 2 / 3):
                    commands += 1  # time-ordered ids, as real commands have, older than the run's
                    command_id = ordered_id(HISTORY_EPOCH_MS + commands, rng)
                    command = str(command_id)
                    state = apply(state, event)
                    ids.append(command)
                    new.append(
                        NewEvent(
                            stream_id=sku,
                            sequence=state.version,
                            event_id=uuid.UUID(int=command_id.int ^ 1),
                            type=type(event).__name__,
                            data=encode_event(event),
                            occurred_at=at,
                            correlation_id=command,
                            causation_id=command,
                        )
                    )
                states[sku] = touched[sku] = state
            last_position = await store.commit(
                CommitBatch(
                    events=new,
                    processed=ids,
                    processed_at=at,
                    stock=[
                        StockRow(
                            sku=s.sku, on_hand=s.on_hand, reserved=s.reserved, version=s.version
                        )
                        for s in touched.values()
                    ],
                )
            )
            written += len(new)
            processed += len(ids)
            now = time.perf_counter()
            if now - last_report >= 5.0:
                last_report = now
                say(f"preloaded {written:,}/{events:,} events ({written / (now - started):,.0f}/s)")
        await store.save_snapshots(
            [
                Snapshot(stream_id=sku, version=state.version, state=encode_state(state))
                for sku, state in states.items()
            ]
        )
    finally:
        await store.close()
    seconds = time.perf_counter() - started
    say(f"preloaded {written:,} events in {seconds:.1f} s ({written / max(seconds, 1e-9):,.0f}/s)")
    return Preloaded(
        events=written,
        processed=processed,
        last_position=last_position,
        processed_at=at.timestamp(),
        seconds=round(seconds, 1),
    )
