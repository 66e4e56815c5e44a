"""Two inventory replicas (replicas=2, index 0 and 1) on one PostgreSQL database and one NATS:
disjoint partitions, spanning orders all-or-nothing, exactly-once effects, a clean audit."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from tests.inventory.crash.test_inventory_crash_distributed import (  # noqa: F401 (fixtures)
    bus,
    env,
    publish_and_settle,
    store,
)
from tests.inventory.crash.worker_process import (
    Worker,
    all_processed,
    audit_passes,
    command,
    eventually,
    free_port,
    make_workload,
)

from stockflow.inventory.service_layer.ownership import Ownership
from stockflow.inventory.service_layer.ports import EventStore, StoredEvent
from stockflow.inventory.service_layer.views import check_projection
from stockflow_kit.messaging import Bus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OWNERSHIP = Ownership(16, 2, 0)


async def read_everything(source: EventStore) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    position = 0
    while page := await source.read_all(after_position=position, limit=5000):
        events.extend(page)
        position = page[-1].position
    return events


async def test_two_replicas_share_the_work_and_keep_every_order_all_or_nothing(
    env: dict[str, str],  # noqa: F811
    bus: Bus,  # noqa: F811
    store: EventStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    workload = make_workload(3000, skus=24, seed=41)
    by_owner = {r: [s for s in workload.skus if OWNERSHIP.owner_of(s) == r] for r in (0, 1)}
    assert by_owner[0]
    assert by_owner[1]
    # Orders that cannot fit, spanning both replicas (either replica coordinating): each must
    # end up holding nothing anywhere.
    doomed = []
    for i in range(60):
        huge, small = (by_owner[i % 2][0], by_owner[1 - i % 2][0])
        lines = [{"sku": huge, "qty": 10_000_000}, {"sku": small, "qty": 1}]
        if i % 4 >= 2:
            lines.reverse()  # the coordinator's own part is the short one
        doomed.append(command("ReserveStock", {"order_id": f"doomed-{i}", "lines": lines}))
    workload.commands[1000:1000] = doomed
    ports = [free_port(), free_port()]
    peers = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    workers = [
        Worker(
            {
                **env,
                "INVENTORY_REPLICAS": "2",
                "INVENTORY_REPLICA_INDEX": str(index),
                "INVENTORY_PEER_URLS": peers,
            },
            tmp_path / f"replica-{index}.log",
            port=ports[index],
        )
        for index in (0, 1)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await worker.wait_ready()
        await publish_and_settle(bus, store, workload, workers)
        reserve_ids = [e.id for e in workload.commands if e.type == "ReserveStock"]
        # Each spanning order's coordinator records the envelope id with its own part; every
        # other command is recorded under its envelope id by its single owner.
        ids = [e.id for e in workload.commands]
        await eventually(lambda: all_processed(store, ids), within=60)
        committed = [await w.metric("inventory_events_committed_total") for w in workers]
        spanning = [await w.metric("inventory_spanning_reservations_total") for w in workers]
        for worker in workers:
            worker.terminate_gracefully()
    finally:
        for worker in workers:
            worker.kill()

    events = await read_everything(store)
    assert len({e.event_id for e in events}) == len(events)
    assert len({(e.stream_id, e.sequence) for e in events}) == len(events)
    # Each replica committed exactly the events of its own SKUs (a writer refuses any other).
    per_owner = Counter(OWNERSHIP.owner_of(e.stream_id) for e in events)
    assert committed == [per_owner[0], per_owner[1]], (committed, per_owner)
    assert all(spanning), f"both replicas must have coordinated spanning orders: {spanning}"
    # Receipts and adjustments: exactly once, by causation id.
    per_command = Counter(e.causation_id for e in events)
    for envelope in workload.seeds + workload.commands:
        if envelope.type in {"ReceiveStock", "AdjustStock"}:
            assert per_command[envelope.id] == 1, envelope
    # Every order holds all its lines or none: fold the reservations from the log.
    held: dict[str, dict[str, int]] = defaultdict(dict)
    for event in events:
        data = json.loads(event.data)
        if event.type == "StockReserved":
            held[data["order_id"]][event.stream_id] = data["qty"]
        elif event.type in {"ReservationReleased", "StockShipped"}:
            held[data["order_id"]].pop(event.stream_id, None)
    orders = {e.data["order_id"]: e.data["lines"] for e in workload.commands if e.id in reserve_ids}
    for order_id, lines in orders.items():
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["qty"]
        holding = held.get(order_id, {})
        if order_id.startswith("doomed-"):
            assert holding == {}, (order_id, holding)
        else:
            assert holding == wanted, (order_id, holding, wanted)
    rows = {row.sku: row for row in await store.all_stock()}
    assert {s: (rows[s].on_hand, rows[s].reserved) for s in workload.skus} == (
        workload.expected_stock
    )
    assert await check_projection(store) == []
    await audit_passes(env)
