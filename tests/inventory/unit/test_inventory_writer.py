"""The writer through ``bootstrap.build`` with memory:// adapters: batching, dedupe, fencing."""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Sequence

import msgspec
import pytest
from tests.inventory.conftest import memory_settings, random_commands

from stockflow.contracts.inventory import EVENT_TYPES
from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.bootstrap import InventoryService, build
from stockflow.inventory.domain.commands import (
    AdjustStock,
    ReceiveStock,
    ReserveStock,
)
from stockflow.inventory.domain.errors import BelowReservedError
from stockflow.inventory.domain.model import StockState
from stockflow.inventory.service_layer.batch import Submission
from stockflow.inventory.service_layer.ports import EventStoreUnavailableError, Snapshot
from stockflow.inventory.service_layer.views import check_projection, rebuild_stock
from stockflow.inventory.service_layer.writer import InvariantViolationError, partition_of
from stockflow_kit.messaging import InMemoryBus


def metric(service: InventoryService, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def test_a_message_id_twice_in_one_batch_is_applied_once(service: InventoryService) -> None:
    writer = service.writer
    first = Submission(message_id="m-1", command=ReceiveStock(sku="A", qty=5))
    again = Submission(message_id="m-1", command=ReceiveStock(sku="A", qty=5))
    await writer.process([first, again])
    assert first.future is None  # process() resolves only futures it was given
    assert writer.states["A"].on_hand == 5
    assert len(await service.store.read_stream("A")) == 1


async def test_a_redelivered_command_changes_nothing_twice(service: InventoryService) -> None:
    writer = service.writer
    applied = await writer.submit(ReceiveStock(sku="A", qty=5), message_id="m-1")
    replay = await writer.submit(ReceiveStock(sku="A", qty=5), message_id="m-1")
    assert (applied.status, replay.status) == ("applied", "duplicate")
    assert (await service.store.get_stock("A")).on_hand == 5  # type: ignore[union-attr]


async def test_a_multi_line_reservation_holds_every_line_or_none(
    service: InventoryService,
) -> None:
    writer = service.writer
    await writer.submit(ReceiveStock(sku="A", qty=5))
    await writer.submit(ReceiveStock(sku="B", qty=1))
    rejected = await writer.submit(ReserveStock(order_id="o-1", lines=(("A", 2), ("B", 2))))
    assert [type(e).__name__ for e in rejected.events] == ["ReservationRejected"]
    assert writer.states["A"].reserved == 0
    held = await writer.submit(ReserveStock(order_id="o-2", lines=(("A", 2), ("B", 1))))
    assert [type(e).__name__ for e in held.events][:2] == ["StockReserved", "StockReserved"]
    assert (writer.states["A"].reserved, writer.states["B"].reserved) == (2, 1)


async def test_a_domain_error_is_an_outcome_recorded_as_processed(
    service: InventoryService,
) -> None:
    writer = service.writer
    await writer.submit(ReceiveStock(sku="A", qty=5))
    await writer.submit(ReserveStock(order_id="o-1", lines=(("A", 4),)))
    outcome = await writer.submit(AdjustStock(sku="A", delta=-3), message_id="adj")
    assert isinstance(outcome.error, BelowReservedError)
    assert await service.store.processed(["adj"]) == {"adj"}
    assert metric(service, "inventory_commands_total", outcome="rejected") == 1


async def test_commands_submitted_together_are_committed_in_one_batch(
    service: InventoryService,
) -> None:
    outcomes = await asyncio.gather(
        *(service.writer.submit(ReceiveStock(sku=f"S{i % 7}", qty=1)) for i in range(200))
    )
    assert {o.status for o in outcomes} == {"applied"}
    assert metric(service, "inventory_batch_size_count") < 5


async def test_a_stale_fence_makes_the_writer_catch_up_and_redecide(bus: InMemoryBus) -> None:
    store = InMemoryEventStore()
    one = build(memory_settings(), bus=bus, event_store=store)
    two = build(memory_settings(), bus=bus, event_store=store)
    await one.start()
    await two.start()
    try:
        await one.writer.submit(ReceiveStock(sku="A", qty=5))
        await one.writer.submit(ReserveStock(order_id="o-1", lines=(("A", 5),)))
        # two still believes A is empty: its first decision is stale and must be redone
        outcome = await two.writer.submit(ReserveStock(order_id="o-2", lines=(("A", 1),)))
        assert [type(e).__name__ for e in outcome.events] == ["ReservationRejected"]
        assert metric(two, "inventory_commit_conflicts_total", error="StaleFenceError") == 1
        assert two.writer.states["A"].reservations == {"o-1": 5}
        assert await check_projection(store) == []
    finally:
        await two.stop()
        await one.stop()


async def test_a_batch_that_would_break_an_invariant_is_refused(
    service: InventoryService,
) -> None:
    writer = service.writer
    writer.states["X"] = StockState(sku="X", on_hand=-5)  # a corrupted state, on purpose
    with pytest.raises(InvariantViolationError):
        await writer.submit(ReceiveStock(sku="X", qty=1))
    assert metric(service, "inventory_invariant_violations_total") == 1
    assert await service.store.read_stream("X") == []


async def test_a_restarted_writer_rebuilds_its_states_from_snapshots_and_events(
    bus: InMemoryBus,
) -> None:
    store = InMemoryEventStore()
    first = build(memory_settings(snapshot_every=2), bus=bus, event_store=store)
    await first.start()
    for qty in (1, 2, 3, 4, 5):
        await first.writer.submit(ReceiveStock(sku="A", qty=qty))
    await first.writer.submit(ReserveStock(order_id="o", lines=(("A", 3),)))
    await first.stop()
    assert await store.load_snapshots()
    second = build(memory_settings(), bus=bus, event_store=store)
    await second.start()
    try:
        assert second.writer.states == first.writer.states
    finally:
        await second.stop()


async def test_the_rebuilt_projection_equals_the_live_one_after_a_random_workload(
    service: InventoryService,
) -> None:
    commands = random_commands(random.Random(7), [f"SKU-{i}" for i in range(12)], 600)
    await asyncio.gather(*(service.writer.submit(c) for c in commands))
    live = await service.store.all_stock()
    assert live == await rebuild_stock(service.store)
    for row in live:
        assert 0 <= row.reserved <= row.on_hand


async def test_stored_event_data_is_the_published_contract(service: InventoryService) -> None:
    await service.writer.submit(ReceiveStock(sku="A", qty=5, reference="po-1"))
    await service.writer.submit(ReserveStock(order_id="o", lines=(("A", 9),)))
    for stored in await service.store.read_stream("A"):
        msgspec.json.decode(stored.data, type=EVENT_TYPES[stored.type])


def test_the_partition_of_a_sku_is_stable() -> None:
    assert partition_of("SKU-1", 16) == zlib.crc32(b"SKU-1") % 16
    assert {partition_of(f"S{i}", 16) for i in range(200)} == set(range(16))


async def test_a_batch_decided_on_a_stale_speculation_is_redone_not_committed(
    bus: InMemoryBus,
) -> None:
    """Two batches in flight: the first conflicts at the fence, so the second, decided on the
    first's speculative states, must be redone on the committed truth."""
    store = InMemoryEventStore()
    one = build(memory_settings(), bus=bus, event_store=store)
    two = build(memory_settings(batch_size=1), bus=bus, event_store=store)
    await one.start()
    await two.start()
    try:
        await one.writer.submit(ReceiveStock(sku="A", qty=5))
        # two believes A is empty. Speculatively: receive 1 -> on_hand 1, so reserving 6 is
        # rejected. The truth after the receipt: on_hand 6, so the reservation holds.
        first = two.writer.enqueue_many([Submission("r-1", ReceiveStock(sku="A", qty=1))])
        second = two.writer.enqueue_many(
            [Submission("o-2", ReserveStock(order_id="o-2", lines=(("A", 6),)))]
        )
        (received,), (reserved,) = await first, await second
        assert received.status == "applied"
        assert [type(e).__name__ for e in reserved.events] == ["StockReserved"]
        assert two.writer.states["A"].reservations == {"o-2": 6}
        assert metric(two, "inventory_commit_conflicts_total", error="StaleFenceError") == 1
        assert await check_projection(store) == []
    finally:
        await two.stop()
        await one.stop()


async def test_a_message_in_flight_and_redelivered_in_the_next_batch_is_applied_once(
    bus: InMemoryBus,
) -> None:
    service = build(memory_settings(batch_size=1), bus=bus)
    await service.start()
    try:
        command = ReceiveStock(sku="A", qty=5)
        first = service.writer.enqueue_many([Submission("m-1", command)])
        again = service.writer.enqueue_many([Submission("m-1", command)])
        (applied,), (duplicate,) = await first, await again
        assert (applied.status, duplicate.status) == ("applied", "duplicate")
        assert service.writer.states["A"].on_hand == 5
        assert len(await service.store.read_stream("A")) == 1
    finally:
        await service.stop()


async def test_pipelined_batches_agree_with_the_store_after_a_random_workload(
    bus: InMemoryBus,
) -> None:
    service = build(memory_settings(batch_size=7), bus=bus)
    await service.start()
    rng = random.Random(5)
    try:
        groups = []
        for i in range(60):
            batch = []
            for j in range(rng.randint(1, 9)):
                sku = f"S{rng.randint(0, 4)}"
                if rng.random() < 0.5:
                    command: ReceiveStock | ReserveStock = ReceiveStock(
                        sku=sku, qty=rng.randint(1, 3)
                    )
                else:
                    command = ReserveStock(order_id=f"o-{i}-{j}", lines=((sku, rng.randint(1, 4)),))
                batch.append(Submission(f"m-{rng.randint(0, 400)}", command))
            groups.append(service.writer.enqueue_many(batch))
        await asyncio.gather(*groups)
        assert await check_projection(service.store) == []
        for sku, state in service.writer.states.items():
            assert state.available >= 0, sku
            assert await service.store.get_stock(sku) is not None
    finally:
        await service.stop()


class FakeStoreWithFailingSnapshots(InMemoryEventStore):
    """Commits work; saving snapshots fails (a database that went away in between)."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshot_attempts = 0

    async def save_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        self.snapshot_attempts += 1
        raise EventStoreUnavailableError("the database went away")


async def test_a_failed_snapshot_never_turns_a_committed_batch_into_a_redo(
    bus: InMemoryBus,
) -> None:
    store = FakeStoreWithFailingSnapshots()
    service = build(memory_settings(snapshot_every=1), bus=bus, event_store=store)
    await service.start()
    try:
        first = await service.writer.submit(ReceiveStock(sku="A", qty=5), message_id="m-1")
        second = await service.writer.submit(ReceiveStock(sku="A", qty=1), message_id="m-2")
        assert (first.status, second.status) == ("applied", "applied")
        assert len(await store.read_stream("A")) == 2
        assert store.snapshot_attempts == 2  # retried on the SKU's next event
    finally:
        await service.stop()
