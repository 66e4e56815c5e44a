"""A writer's start: its states come from the snapshots and each stream's events after them,
never from a fold of the whole log, and they are the states the log holds."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.inventory.conftest import memory_settings, random_commands

from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.adapters.event_store.sqlite import SqliteEventStore
from stockflow.inventory.bootstrap import build
from stockflow.inventory.domain.commands import ReceiveStock, ReserveStock
from stockflow.inventory.domain.events import StockReceived
from stockflow.inventory.domain.model import StockState, apply
from stockflow.inventory.service_layer.codec import decode_event, encode_event
from stockflow.inventory.service_layer.ports import CommitBatch, EventStore, NewEvent, StoredEvent
from stockflow_kit.messaging import InMemoryBus


async def fold_whole_log(store: EventStore) -> dict[str, StockState]:
    """Every stream's state from its first event: the reference a start must agree with."""
    states: dict[str, StockState] = {}
    position = 0
    while events := await store.read_all(after_position=position, limit=100):
        for stored in events:
            state = states.get(stored.stream_id) or StockState(sku=stored.stream_id)
            states[stored.stream_id] = apply(state, decode_event(stored.type, stored.data))
        position = events[-1].position
    return states


class CountingStore(InMemoryEventStore):
    """Counts the events each read hands out."""

    def __init__(self) -> None:
        super().__init__()
        self.from_read_all = 0
        self.from_read_stream = 0

    async def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        events = await super().read_all(after_position=after_position, limit=limit)
        self.from_read_all += len(events)
        return events

    async def read_stream(
        self, stream_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        events = await super().read_stream(stream_id, after=after, limit=limit)
        self.from_read_stream += len(events)
        return events


# A: many events, so snapshots and events after the last one; NEVER: only rejected
# reservations (a stream with events but no stock row and, with snapshot_every=1000, no
# snapshot); the others a few events each.
SKUS = ["A", "B", "C", "D", "NEVER"]


async def run_then_restart(
    bus: InMemoryBus, first_store: EventStore, second_store: EventStore, *, snapshot_every: int
) -> tuple[dict[str, StockState], dict[str, StockState]]:
    """Run a random workload on one writer, stop it, start another on the same log; return
    the states of both."""
    commands = random_commands(random.Random(3), SKUS[:-1], 300)
    commands += [
        ReserveStock(order_id="never-1", lines=(("NEVER", 1),)),
        ReceiveStock(sku="A", qty=1),
        ReserveStock(order_id="never-2", lines=(("NEVER", 2), ("A", 1))),
    ]
    first = build(memory_settings(snapshot_every=snapshot_every), bus=bus, event_store=first_store)
    await first.start()
    try:
        await asyncio.gather(*(first.writer.submit(c) for c in commands[:150]))
        for command in commands[150:]:  # the last ones one by one: events after snapshots
            await first.writer.submit(command)
        before = dict(first.writer.states)
    finally:
        await first.stop()
    second = build(memory_settings(), bus=bus, event_store=second_store)
    await second.start()
    try:
        return before, dict(second.writer.states)
    finally:
        await second.stop()


async def test_a_restarted_writer_reads_only_the_events_after_the_snapshots(
    bus: InMemoryBus,
) -> None:
    store = CountingStore()
    before, after = await run_then_restart(bus, store, store, snapshot_every=7)
    assert after == before == await fold_whole_log(store)
    assert after["NEVER"].version == 2
    assert not after["NEVER"].has_stock
    snapshots = {s.stream_id: s.version for s in await store.load_snapshots()}
    store.from_read_all = store.from_read_stream = 0
    second = build(memory_settings(), bus=bus, event_store=store)
    await second.start()
    try:
        assert second.writer.states == before
        assert store.from_read_all == 0  # nothing committed after the checkpoint
        after_snapshots = sum(s.version - snapshots.get(s.sku, 0) for s in before.values())
        logged = await store.projection_checkpoint()  # the log's length here
        assert 0 < store.from_read_stream == after_snapshots < logged
    finally:
        await second.stop()


@pytest.mark.parametrize("snapshot_every", [1, 7, 1000])
async def test_a_writer_restarted_on_a_sqlite_file_has_the_states_of_the_log(
    bus: InMemoryBus, tmp_path: Path, snapshot_every: int
) -> None:
    path = tmp_path / "inventory.sqlite3"
    before, after = await run_then_restart(
        bus, SqliteEventStore(path), SqliteEventStore(path), snapshot_every=snapshot_every
    )
    store = SqliteEventStore(path)
    await store.start()
    try:
        assert after == before == await fold_whole_log(store)
        assert await store.stream_versions() == {s.sku: s.version for s in before.values()}
    finally:
        await store.close()


class InterleavingStore(InMemoryEventStore):
    """Another writer commits while a start is between its reads: right after it listed the
    streams (so the list and the per-stream reads miss the new events)."""

    def __init__(self) -> None:
        super().__init__()
        self.interleave = False

    async def stream_versions(self) -> dict[str, int]:
        versions = await super().stream_versions()
        if self.interleave:
            self.interleave = False
            events = [
                NewEvent(
                    stream_id=sku,
                    sequence=versions.get(sku, 0) + 1,
                    event_id=uuid.uuid4(),
                    type="StockReceived",
                    data=encode_event(StockReceived(sku=sku, qty=5, reference="late")),
                    occurred_at=datetime.now(UTC),
                )
                for sku in ("A", "LATE")
            ]
            await self.commit(CommitBatch(events=events, processed_at=datetime.now(UTC)))
        return versions


async def test_events_committed_while_a_writer_starts_are_folded_too(bus: InMemoryBus) -> None:
    store = InterleavingStore()
    first = build(memory_settings(snapshot_every=2), bus=bus, event_store=store)
    await first.start()
    try:
        for qty in (1, 2, 3):
            await first.writer.submit(ReceiveStock(sku="A", qty=qty))
    finally:
        await first.stop()
    store.interleave = True
    second = build(memory_settings(), bus=bus, event_store=store)
    await second.start()
    try:
        assert not store.interleave  # the other commit happened during the start
        assert second.writer.states == await fold_whole_log(store)
        assert (second.writer.states["A"].on_hand, second.writer.states["LATE"].on_hand) == (11, 5)
    finally:
        await second.stop()


async def test_a_member_taking_partitions_finds_the_streams_without_a_stock_row(
    bus: InMemoryBus,
) -> None:
    # What a member that acquires partitions (leases, ADR 0010) folds: every stream of those
    # partitions, NEVER (rejected reservations only: no stock row, no snapshot) included, so
    # its next event gets the next sequence, not the first.
    store = InMemoryEventStore()
    before, _ = await run_then_restart(bus, store, store, snapshot_every=1000)
    writer = build(memory_settings(), bus=bus, event_store=store).writer
    committed = writer.committed
    partitions = committed.ownership.partitions

    applied = await committed.load_partitions(range(partitions))

    assert committed.states == before
    assert committed.states["NEVER"].version == 2
    assert applied == sum(s.version for s in before.values())  # no snapshots: every event
