"""Inventory members that rebalance live (ADR 0010): real ``stockflow serve inventory``
processes with ``INVENTORY_ASSIGNMENT=leases`` on one PostgreSQL database and NATS, scaled
1 -> 2 -> 3 -> 2 under a continuous load (one of them SIGKILLed while it holds partitions).

Then: every command applied exactly once (events counted by causation), no duplicate
(stream, sequence) or event id, every order all-or-nothing (the doomed ones hold nothing),
stock as expected, projection == rebuild, ``stockflow audit`` exits 0, and per partition
the commits came from one member at a time (the epochs of ``lease_commits`` never interleave,
and every event lies in a commit that claimed its partition)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
import pytest
from tests.inventory.crash.test_inventory_crash_distributed import (  # noqa: F401 (fixtures)
    bus,
    env,
    store,
)
from tests.inventory.crash.test_inventory_replicas_distributed import read_everything
from tests.inventory.crash.worker_process import (
    Worker,
    all_processed,
    audit_passes,
    command,
    eventually,
)

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow.inventory.service_layer.leases import RESERVE_ROUTE, recorded_id
from stockflow.inventory.service_layer.ownership import partition_of, scoped_id
from stockflow.inventory.service_layer.ports import EventStore, StoredEvent
from stockflow.inventory.service_layer.views import check_projection
from stockflow_kit.messaging import Bus, Envelope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 16


class Load:
    """Commands whose effects commute, published at a steady pace until stopped."""

    def __init__(self, skus: list[str], seed: int) -> None:
        self.rng = random.Random(seed)
        self.skus = skus
        self.on_hand = dict.fromkeys(skus, 1_000_000)
        self.reserved = dict.fromkeys(skus, 0)
        self.published: list[Envelope] = []
        self.expected: dict[str, int] = {}
        self.orders: dict[str, dict[str, int]] = {}
        self.stopped = asyncio.Event()

    def next(self, i: int) -> Envelope:
        rng, skus = self.rng, self.skus
        roll = rng.random()
        if roll < 0.02:  # doomed: cannot fit, spanning partitions: must hold nothing
            huge = rng.choice(skus)
            small = next(
                s for s in skus if partition_of(s, PARTITIONS) != partition_of(huge, PARTITIONS)
            )
            lines = [{"sku": huge, "qty": 10_000_000}, {"sku": small, "qty": 1}]
            if rng.random() < 0.5:
                lines.reverse()
            order_id = f"doomed-{i}"
            self.orders[order_id] = {}
            return command("ReserveStock", {"order_id": order_id, "lines": lines})
        if roll < 0.4:
            sku, qty = rng.choice(skus), rng.randint(1, 50)
            self.on_hand[sku] += qty
            envelope = command("ReceiveStock", {"sku": sku, "qty": qty})
            self.expected[envelope.id] = 1
            return envelope
        if roll < 0.5:
            sku, delta = rng.choice(skus), rng.randint(1, 5)
            self.on_hand[sku] += delta
            envelope = command("AdjustStock", {"sku": sku, "delta": delta, "reason": "count"})
            self.expected[envelope.id] = 1
            return envelope
        chosen = rng.sample(skus, rng.randint(1, 3))
        lines = [{"sku": s, "qty": rng.randint(1, 3)} for s in chosen]
        order_id = f"o-{i}"
        self.orders[order_id] = {line["sku"]: line["qty"] for line in lines}  # type: ignore[misc]
        for line in lines:
            self.reserved[line["sku"]] += line["qty"]  # type: ignore[index]
        envelope = command("ReserveStock", {"order_id": order_id, "lines": lines})
        self.expected[envelope.id] = len(lines)
        return envelope

    async def run(self, bus: Bus, *, per_second: float = 600, chunk: int = 60) -> None:  # noqa: F811
        i = 0
        while not self.stopped.is_set():
            envelopes = [self.next(i + k) for k in range(chunk)]
            i += chunk
            await bus.publish(COMMANDS_TOPIC, envelopes)
            self.published.extend(envelopes)
            await asyncio.sleep(chunk / per_second)


def processed_ids(envelope: Envelope) -> list[str]:
    """The ids a command is recorded under: a reservation spanning partitions as one part per
    partition (each keyed by the id scoped to its partition, and recorded under the internal
    API's id for that key, wherever the part ran), anything else under its own id."""
    if envelope.type == "ReserveStock":
        parts = {partition_of(line["sku"], PARTITIONS) for line in envelope.data["lines"]}
        if len(parts) > 1:
            return [recorded_id(RESERVE_ROUTE, scoped_id(envelope.id, p)) for p in parts]
    return [envelope.id]


async def missing(store: EventStore, load: Load) -> list[tuple[str, str, list[int]]]:  # noqa: F811
    """The published commands not (completely) recorded yet: type, id, partitions."""
    out = []
    for envelope in load.published:
        ids = processed_ids(envelope)
        if len(await store.processed(ids)) != len(ids):
            skus = [line["sku"] for line in envelope.data.get("lines", [])] or [
                envelope.data["sku"]
            ]
            out.append(
                (envelope.type, envelope.id, sorted({partition_of(s, PARTITIONS) for s in skus}))
            )
    return out


async def test_members_scale_1_2_3_2_under_load_and_apply_every_command_once(
    env: dict[str, str],  # noqa: F811
    bus: Bus,  # noqa: F811
    store: EventStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    leased = {
        **env,
        "INVENTORY_ASSIGNMENT": "leases",
        "INVENTORY_PARTITIONS": str(PARTITIONS),
        "INVENTORY_LEASE_TTL": "2",
        "INVENTORY_LEASE_INTERVAL": "0.25",
    }
    run = uuid.uuid4().hex[:6]
    skus = [f"{run}-SKU-{i}" for i in range(40)]
    load = Load(skus, seed=7)
    workers = [
        Worker({**leased, "INVENTORY_MEMBER_ID": f"m{i}"}, tmp_path / f"m{i}.log") for i in range(3)
    ]
    timeline: list[tuple[float, str]] = []
    try:
        workers[0].start()
        await workers[0].wait_ready()
        await store.start()
        seeds = [command("ReceiveStock", {"sku": s, "qty": 1_000_000}) for s in skus]
        await bus.publish(COMMANDS_TOPIC, seeds)
        await eventually(lambda: all_processed(store, [e.id for e in seeds]), within=30)
        assert await workers[0].metric("inventory_leases_held") == PARTITIONS
        loading = asyncio.create_task(load.run(bus))
        await asyncio.sleep(3)
        for worker in workers[1:]:  # 1 -> 2 -> 3
            timeline.append((time.time(), f"start {worker.env['INVENTORY_MEMBER_ID']}"))
            worker.start()
            await worker.wait_ready()
            await asyncio.sleep(4)
        held = [await w.metric("inventory_leases_held") for w in workers]
        assert sum(held) == PARTITIONS, held
        assert min(held) >= 5, held  # 6/5/5
        victim = workers[1]
        assert held[1] > 0
        killed_at = time.time()
        timeline.append((killed_at, "SIGKILL m1"))
        victim.kill()  # 3 -> 2, while it holds partitions
        await asyncio.sleep(6)
        load.stopped.set()
        await loading
        held = [await workers[i].metric("inventory_leases_held") for i in (0, 2)]
        assert sum(held) == PARTITIONS, held
        ids = [i for e in load.published for i in processed_ids(e)]
        try:
            await eventually(lambda: all_processed(store, ids), within=60)
        except AssertionError:
            left = await missing(store, load)
            raise AssertionError(f"{len(left)} commands not applied: {left[:10]}") from None
        committed = [await workers[i].metric("inventory_events_committed_total") for i in (0, 2)]
        assert all(committed), committed
        for i in (0, 2):
            workers[i].terminate_gracefully()
    finally:
        load.stopped.set()
        for worker in workers:
            worker.kill()

    events = await read_everything(store)
    assert len({e.event_id for e in events}) == len(events)
    assert len({(e.stream_id, e.sequence) for e in events}) == len(events)
    # Exactly once: the events of each command, by causation (scoped parts mapped back).
    original = {}
    for envelope in load.published:
        for part in processed_ids(envelope):
            original[part] = envelope.id
    per_command = Counter(original.get(e.causation_id or "") for e in events)
    wrong = {
        m: (per_command.get(m, 0), n)
        for m, n in load.expected.items()
        if per_command.get(m, 0) != n
    }
    assert wrong == {}, (
        f"{len(wrong)} commands applied a wrong number of times: {list(wrong.items())[:5]}"
    )
    # All or nothing per order.
    held_by: dict[str, dict[str, int]] = defaultdict(dict)
    for event in events:
        data = json.loads(event.data)
        if event.type == "StockReserved":
            held_by[data["order_id"]][event.stream_id] = data["qty"]
        elif event.type in {"ReservationReleased", "StockShipped"}:
            held_by[data["order_id"]].pop(event.stream_id, None)
    for order_id, wanted in load.orders.items():
        assert held_by.get(order_id, {}) == wanted, (order_id, held_by.get(order_id), wanted)
    rows = {row.sku: row for row in await store.all_stock()}
    assert {s: (rows[s].on_hand, rows[s].reserved) for s in skus} == {
        s: (load.on_hand[s], load.reserved[s]) for s in skus
    }
    assert await check_projection(store) == []
    pauses = await check_one_writer_per_partition(env, events, killed_at=killed_at)
    moved = [p for p in pauses if p[2] != "takeover"]
    report = [f"\nload: {len(load.published)} commands, {len(events)} events; {timeline}"]
    report.append("handovers (partition, seconds without commits on it, kind):")
    report += [f"  p{p:<3} {seconds:6.3f} s  {kind}" for p, seconds, kind in sorted(pauses)]
    sys.stderr.write("\n".join(report) + "\n")
    assert moved, "no partition moved by a voluntary release"
    assert any(kind == "takeover" for _, _, kind in pauses), "the SIGKILLed member's partitions"
    await audit_passes(env)


async def check_one_writer_per_partition(
    env: dict[str, str],  # noqa: F811
    events: list[StoredEvent],
    *,
    killed_at: float,
) -> list[tuple[int, float, str]]:
    """Per partition, the commits in position order never go back to an older epoch, each
    epoch is one member's, and every event lies in a commit that claimed its partition.
    Returns the handovers: (partition, seconds between the last commit of an epoch and the
    first of the next, ``release``, or ``takeover`` of the SIGKILLed member's)."""
    schema = env["INVENTORY_EVENT_STORE_SCHEMA"]
    conn = await asyncpg.connect(env["INVENTORY_EVENT_STORE_URL"])
    try:
        rows = await conn.fetch(
            f"SELECT partition, epoch, member, first_position, last_position,"
            f" extract(epoch FROM committed_at) FROM {schema}.lease_commits"
            " ORDER BY partition, first_position"
        )
    finally:
        await conn.close()
    by_partition: dict[int, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_partition[row[0]].append(row)
    handovers = []
    for partition, commits in by_partition.items():
        owner_of_epoch: dict[int, str] = {}
        for before, after in itertools.pairwise(commits):
            assert after[1] >= before[1], (partition, before, after)  # epochs never go back
            if after[1] != before[1]:
                taken = before[2] == "m1" and float(after[5]) > killed_at
                kind = "takeover" if taken else "release"
                handovers.append((partition, float(after[5] - before[5]), kind))
        for commit in commits:
            assert owner_of_epoch.setdefault(commit[1], commit[2]) == commit[2], commit
    ranges = {p: [(c[3], c[4]) for c in cs] for p, cs in by_partition.items()}
    for event in events:
        spans = ranges.get(partition_of(event.stream_id, PARTITIONS), [])
        assert any(a <= event.position <= b for a, b in spans), event
    return handovers
