"""Helpers for tests that run ``stockflow serve inventory`` as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stockflow.inventory.service_layer.ports import EventStore, StockRow
from stockflow.inventory.service_layer.views import check_projection
from stockflow_kit.lifecycle import ServiceProcess, free_port
from stockflow_kit.messaging import Envelope

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))


@dataclass
class Worker:
    """One ``stockflow serve inventory`` process; ``env`` completes the inherited environment.

    A thin use of :class:`~stockflow_kit.lifecycle.ServiceProcess` (which also makes the
    worker die with the test process); ``process`` is its :class:`subprocess.Popen`.
    """

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    service: ServiceProcess = field(init=False)

    def __post_init__(self) -> None:
        env = {**self.env, "INVENTORY_PORT": str(self.port)}
        if "INVENTORY_LOG_JSON" not in os.environ:
            env.setdefault("INVENTORY_LOG_JSON", "true")
        self.service = ServiceProcess(
            [STOCKFLOW, "serve", "inventory"],
            name="inventory worker",
            env=env,
            port=self.port,
            log=self.log,
        )

    @property
    def auth(self) -> dict[str, str]:
        """The header presenting the service credential the worker was started with."""
        token = self.env.get("STOCKFLOW_SERVICE_TOKEN") or os.environ["STOCKFLOW_SERVICE_TOKEN"]
        return {"Authorization": f"Bearer {token}"}

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.service.popen

    def start(self) -> None:
        self.service.start()

    async def wait_ready(self, within: float = 60.0) -> None:
        await self.service.wait_ready(within)

    async def metric(self, name: str) -> float:
        return await self.service.metric(name)

    def kill(self) -> None:
        self.service.kill()

    def terminate_gracefully(self) -> None:
        """SIGTERM; uvicorn shuts down and then re-raises the signal, so -SIGTERM is normal."""
        assert self.terminate() in {0, -signal.SIGTERM}
        assert "inventory.stopped" in self.log.read_text().rsplit("Started server process", 1)[-1]

    def terminate(self) -> int:
        if self.service.popen is None:
            return 0
        return self.service.terminate(grace=20.0)


@dataclass
class Workload:
    """Commands whose effects commute (receipts, positive adjustments, reservations that always
    fit), so the expected end state is the same in any delivery order."""

    skus: list[str]
    seeds: list[Envelope]
    commands: list[Envelope]
    expected_events: dict[str, int]
    expected_stock: dict[str, tuple[int, int]]


def make_workload(n: int, *, skus: int = 20, seed: int = 1) -> Workload:
    import random

    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    names = [f"{run}-SKU-{i}" for i in range(skus)]
    on_hand = dict.fromkeys(names, 1_000_000)
    reserved = dict.fromkeys(names, 0)
    seeds = [command("ReceiveStock", {"sku": s, "qty": 1_000_000}) for s in names]
    expected = {e.id: 1 for e in seeds}
    commands = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.4:
            sku, qty = rng.choice(names), rng.randint(1, 50)
            envelope = command("ReceiveStock", {"sku": sku, "qty": qty})
            on_hand[sku] += qty
            expected[envelope.id] = 1
        elif roll < 0.5:
            sku, delta = rng.choice(names), rng.randint(1, 5)
            envelope = command("AdjustStock", {"sku": sku, "delta": delta, "reason": "count"})
            on_hand[sku] += delta
            expected[envelope.id] = 1
        else:
            lines = [
                {"sku": s, "qty": rng.randint(1, 3)} for s in rng.sample(names, rng.randint(1, 3))
            ]
            envelope = command("ReserveStock", {"order_id": f"{run}-o-{i}", "lines": lines})
            for line in lines:
                reserved[line["sku"]] += line["qty"]  # type: ignore[index]
            expected[envelope.id] = len(lines)
        commands.append(envelope)
    stock = {s: (on_hand[s], reserved[s]) for s in names}
    return Workload(names, seeds, commands, expected, stock)


def command(kind: str, data: dict[str, object]) -> Envelope:
    return Envelope.new(kind, data, source="test", subject=str(data.get("sku", "order")))


async def handled(worker: Worker, commands: int) -> bool:
    """Whether the worker (this life of it) has handled at least ``commands`` commands."""
    return await worker.metric("inventory_commands_total") >= commands


async def until(check: Callable[[], Awaitable[bool]], within: float) -> bool:
    """Poll ``check`` closely (a kill on progress should land right after it turns true)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.005)
    return False


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll ``check`` until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        assert time.monotonic() < deadline, f"condition not reached within {within}s"
        await asyncio.sleep(0.05)


async def all_processed(store: EventStore, ids: Sequence[str]) -> bool:
    done = 0
    for start in range(0, len(ids), 500):
        done += len(await store.processed(ids[start : start + 500]))
    return done == len(ids)


async def assert_exactly_once(store: EventStore, workload: Workload) -> None:
    """Every command applied once: its events, no more; stock as the reference; projection ok."""
    events = []
    position = 0
    while page := await store.read_all(after_position=position, limit=5000):
        events.extend(page)
        position = page[-1].position
    mine = [e for e in events if e.causation_id in workload.expected_events]
    assert len({e.event_id for e in events}) == len(events)
    assert len({(e.stream_id, e.sequence) for e in events}) == len(events)
    per_command = Counter(e.causation_id for e in mine)
    wrong = {
        m: (per_command.get(m, 0), n)
        for m, n in workload.expected_events.items()
        if per_command.get(m, 0) != n
    }
    assert wrong == {}, (
        f"{len(wrong)} commands applied a wrong number of times: {list(wrong.items())[:5]}"
    )
    rows: dict[str, StockRow] = {row.sku: row for row in await store.all_stock()}
    actual = {s: (rows[s].on_hand, rows[s].reserved) for s in workload.skus}
    assert actual == workload.expected_stock
    assert await check_projection(store) == []


async def audit_passes(env: dict[str, str]) -> None:
    """``stockflow audit`` on the worker's event store exits 0 (its report on failure)."""
    audit = await asyncio.create_subprocess_exec(
        STOCKFLOW,
        "audit",
        "--event-store-url",
        env["INVENTORY_EVENT_STORE_URL"],
        "--schema",
        env["INVENTORY_EVENT_STORE_SCHEMA"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    report, _ = await asyncio.wait_for(audit.communicate(), 120)
    assert audit.returncode == 0, report.decode()[-3000:]
