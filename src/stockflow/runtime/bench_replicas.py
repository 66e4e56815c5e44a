"""``stockflow bench replicas``: inventory members with leases (ADR 0010), measured in one run.

Real ``stockflow serve inventory`` processes on PostgreSQL + NATS JetStream, each phase in a
schema and a bus prefix of its own (removed afterwards):

- **throughput**: the same pre-generated commands (receipts, adjustments, reservations of
  1-3 lines, most spanning partitions) published to ``inventory.commands``; events/s from
  the first publish until every command is recorded, with 1 member and with 2 members
  (``INVENTORY_ASSIGNMENT=leases``), and with the static single replica as the reference;
- **rebalance pause**: 1 member under a steady load, a second one joins; per moved
  partition, the seconds between the last commit of the old epoch and the first of the
  new one (``lease_commits``, the database's clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from stockflow.contracts.inventory_commands import COMMANDS_TOPIC
from stockflow.inventory.adapters.event_store.postgres import PostgresEventStore
from stockflow.inventory.service_layer.leases import RESERVE_ROUTE, recorded_id
from stockflow.inventory.service_layer.ownership import partition_of, scoped_id
from stockflow_kit.lifecycle import ServiceProcess
from stockflow_kit.messaging import Envelope, make_bus

__all__ = ["ReplicaFigures", "run_replicas_bench"]

PARTITIONS = 16
STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))


@dataclass
class ReplicaFigures:
    """What one run measured."""

    commands: int
    max_lines: int = 3
    """Lines per order at most (1: no order spans partitions)."""
    throughput: dict[str, float] = field(default_factory=dict)
    """events/s per phase: ``static-1``, ``leases-1``, ``leases-2``."""
    events: dict[str, int] = field(default_factory=dict)
    pauses: list[float] = field(default_factory=list)
    """Seconds without commits per partition moved when the second member joined."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "commands": self.commands,
            "max_lines": self.max_lines,
            "throughput_events_per_s": self.throughput,
            "events": self.events,
            "rebalance_pauses_s": self.pauses,
        }


def _command(kind: str, data: dict[str, Any]) -> Envelope:
    return Envelope.new(kind, data, source="bench", subject=str(data.get("sku", "order")))


def _workload(n: int, skus: list[str], seed: int, max_lines: int = 3) -> list[Envelope]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.4:
            out.append(_command("ReceiveStock", {"sku": rng.choice(skus), "qty": 5}))
        elif roll < 0.5:
            data = {"sku": rng.choice(skus), "delta": 1, "reason": "count"}
            out.append(_command("AdjustStock", data))
        else:
            lines = [{"sku": s, "qty": 1} for s in rng.sample(skus, rng.randint(1, max_lines))]
            out.append(_command("ReserveStock", {"order_id": f"o-{seed}-{i}", "lines": lines}))
    return out


def _recorded(envelope: Envelope, *, leased: bool) -> list[str]:
    """The processed ids of a command (with leases, a spanning order's are per partition)."""
    if leased and envelope.type == "ReserveStock":
        parts = {partition_of(line["sku"], PARTITIONS) for line in envelope.data["lines"]}
        if len(parts) > 1:
            return [recorded_id(RESERVE_ROUTE, scoped_id(envelope.id, p)) for p in parts]
    return [envelope.id]


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {within} s")
        await asyncio.sleep(0.05)


class _Phase:
    """One schema + bus prefix, and the members started on them."""

    def __init__(self, postgres_url: str, nats_url: str, logs: Path, name: str) -> None:
        run = uuid.uuid4().hex[:8]
        token = secrets.token_urlsafe(32)
        self.name = name
        self.postgres_url = postgres_url
        self.nats_url = nats_url
        self.schema = f"bench_rep_{run}"
        self.prefix = f"br{run}"
        self.logs = logs
        self.env = {
            "INVENTORY_EVENT_STORE_URL": postgres_url,
            "INVENTORY_EVENT_STORE_SCHEMA": self.schema,
            "BUS_URL": f"{nats_url}?prefix={self.prefix}",
            "INVENTORY_PARTITIONS": str(PARTITIONS),
            "INVENTORY_BATCH_SIZE": "500",
            "INVENTORY_LOG_JSON": "true",
            "INVENTORY_LOG_LEVEL": "warning",
            # The members' credential for each other's internal API: one per run.
            "INVENTORY_SERVICE_TOKEN": token,
        }
        self.members: list[ServiceProcess] = []
        self.store = PostgresEventStore(postgres_url, schema=self.schema)
        self.bus = make_bus(self.env["BUS_URL"], name="bench-replicas")

    async def __aenter__(self) -> _Phase:
        await self.store.start()
        await self.bus.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        for member in self.members:
            member.kill()
        await self.bus.close()
        await self.store.close()
        conn = await asyncpg.connect(self.postgres_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await conn.close()
        import nats

        client = await nats.connect(self.nats_url)
        try:
            jetstream = client.jetstream()
            for info in await jetstream.streams_info():
                if info.config.name and info.config.name.startswith(f"{self.prefix}_"):
                    await jetstream.delete_stream(info.config.name)
        finally:
            await client.close()

    async def start(self, extra: dict[str, str]) -> ServiceProcess:
        index = len(self.members)
        member = ServiceProcess(
            [STOCKFLOW, "serve", "inventory"],
            name=f"inventory {self.name} {index}",
            env={**self.env, **extra, "INVENTORY_MEMBER_ID": f"m{index}"},
            port_env="INVENTORY_PORT",
            log=self.logs / f"{self.name}-{index}.log",
        )
        member.start()
        self.members.append(member)
        await member.wait_ready(60)
        return member

    async def seed(self, skus: list[str]) -> None:
        seeds = [_command("ReceiveStock", {"sku": s, "qty": 10_000_000}) for s in skus]
        await self.bus.publish(COMMANDS_TOPIC, seeds)
        await self.done([e.id for e in seeds], within=60)

    async def done(self, ids: list[str], within: float) -> None:
        async def check() -> bool:
            count = 0
            for start in range(0, len(ids), 2000):
                count += len(await self.store.processed(ids[start : start + 2000]))
            return count == len(ids)

        await _until(check, within)

    async def balanced(self, holders: int) -> None:
        async def check() -> bool:
            held = [await m.metric("inventory_leases_held") for m in self.members]
            return sum(held) == PARTITIONS and min(held) >= PARTITIONS // holders

        await _until(check, 30)

    async def throughput(self, commands: list[Envelope], *, leased: bool) -> tuple[float, int]:
        """Publish ``commands`` (chunks of 1,000) and wait for all: (events/s, events)."""
        before = await self.event_rows()
        started = time.perf_counter()
        for start in range(0, len(commands), 1000):
            await self.bus.publish(COMMANDS_TOPIC, commands[start : start + 1000])
        await self.done([i for e in commands for i in _recorded(e, leased=leased)], within=300)
        seconds = time.perf_counter() - started
        events = await self.event_rows() - before
        return events / seconds, events

    async def event_rows(self) -> int:
        """The events in the log, counted: positions have gaps where a fenced commit rolled
        back (the sequence does not), so the projection's checkpoint would count those too."""
        conn = await asyncpg.connect(self.postgres_url)
        try:
            rows: int = await conn.fetchval(f"SELECT count(*) FROM {self.schema}.events")
        finally:
            await conn.close()
        return rows


async def run_replicas_bench(
    *,
    postgres_url: str,
    nats_url: str,
    commands: int = 20_000,
    skus: int = 200,
    static_reference: bool = True,
    max_lines: int = 3,
    rebalance: bool = True,
    echo: Callable[[str], None] = print,
) -> ReplicaFigures:
    """Run the phases one after another (see the module docstring)."""
    figures = ReplicaFigures(commands=commands, max_lines=max_lines)
    names = [f"SKU-{i}" for i in range(skus)]
    workload = _workload(commands, names, seed=1, max_lines=max_lines)
    leased = {"INVENTORY_ASSIGNMENT": "leases"}
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        logs = Path(tmp)
        phases: list[tuple[str, dict[str, str], int]] = [
            ("leases-1", leased, 1),
            ("leases-2", leased, 2),
        ]
        if static_reference:
            phases.insert(0, ("static-1", {}, 1))
        for name, extra, members in phases:
            async with _Phase(postgres_url, nats_url, logs, name) as phase:
                for _ in range(members):
                    await phase.start(extra)
                if extra:
                    await phase.balanced(members)
                await phase.seed(names)
                rate, events = await phase.throughput(workload, leased=bool(extra))
                figures.throughput[name] = round(rate, 1)
                figures.events[name] = events
                echo(f"{name}: {rate:,.0f} events/s ({events:,} events)")
        if not rebalance:
            return figures
        async with _Phase(postgres_url, nats_url, logs, "rebalance") as phase:
            await phase.start(leased)
            await phase.balanced(1)
            await phase.seed(names)
            figures.pauses = await _rebalance_pauses(phase, names)
            echo(
                f"rebalance: {len(figures.pauses)} partitions moved, pause median "
                f"{statistics.median(figures.pauses or [0]):.3f} s, max "
                f"{max(figures.pauses or [0]):.3f} s"
            )
    return figures


async def _rebalance_pauses(phase: _Phase, skus: list[str]) -> list[float]:
    """A second member joins a loaded one: the pause of every partition that moved."""
    stop = asyncio.Event()

    async def load() -> None:
        seed = 100
        while not stop.is_set():
            await phase.bus.publish(COMMANDS_TOPIC, _workload(100, skus, seed))
            seed += 1
            await asyncio.sleep(0.1)

    loading = asyncio.create_task(load())
    try:
        await asyncio.sleep(3)
        await phase.start({"INVENTORY_ASSIGNMENT": "leases"})
        await phase.balanced(2)
        await asyncio.sleep(3)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await loading
    conn = await asyncpg.connect(phase.postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT partition, epoch, extract(epoch FROM committed_at) AS at"
            f" FROM {phase.schema}.lease_commits ORDER BY partition, first_position"
        )
    finally:
        await conn.close()
    pauses = []
    for before, after in itertools.pairwise(rows):
        if before["partition"] == after["partition"] and before["epoch"] != after["epoch"]:
            pauses.append(round(float(after["at"] - before["at"]), 3))
    return pauses
