"""Claim 2 of ``stockflow bench claims``: the inventory off the critical path (the bus)
against on it (synchronous HTTP), as the user at edge sees it.

Two systems run side by side on embedded backends of their own, each behind its own
``stockflow serve edge``:

* ``async``: the product. Edge -> ``stockflow serve orders`` answers 202 once the order and
  its ``OrderPlaced`` are stored; the inventory reserves from the bus (the saga);
* ``sync``: edge -> the ``sync_orders`` fixture (:mod:`.claims_apps`), which calls the
  inventory's ``POST /internal/reservations`` through the resilient client and answers 201
  only once the inventory decided. The inventory is the same ``stockflow serve inventory``,
  reached through a :class:`~stockflow_kit.testing.FaultProxy`.

Each condition loads one system, then the other, with the same closed-loop placements
(``concurrency`` customers, 1-3 lines over 20 SKUs stocked far beyond demand):

* ``normal``;
* ``slow``: the proxy delays every answer of the inventory by ``slow_ms`` (the async path
  never calls the inventory over HTTP, so this fault does not reach it: that is the claim);
* ``outage``: the inventory process is stopped (SIGSTOP) for ``outage`` seconds a third
  into the window, then resumed (SIGCONT); the same fault for both.

After each async window the bench waits until every accepted order settled on the bus
(``OrderConfirmed`` / ``OrderRejected``), so the saga's backlog does not run into the next
window, and reports the placement-to-settled times too: the work the user did not wait for
still happens, later. The end is ``stockflow audit`` on each system's stores (the sync
variant's orders are no product orders: its audit covers the inventory's invariants).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import msgspec

from stockflow.bench.backends import BenchBackend, embedded_backend
from stockflow.bench.claims_processes import (
    Credentials,
    Tokens,
    edge_process,
    fixture_process,
    start_all,
    stop_all,
)
from stockflow.bench.closed_loop import LoopFigures, Request, change, run_closed_loop
from stockflow.bench.figures import percentile
from stockflow.bench.orders_http import receive_stock
from stockflow.bench.raw_http import RawResponse
from stockflow.bench.saga_services import SagaServices, inventory_process
from stockflow.bench.settlements import SettlementListener
from stockflow.bench.worker import WorkerProcess
from stockflow_kit.lifecycle import ServiceProcess
from stockflow_kit.testing import PASS_THROUGH, FaultProxy, Latency

__all__ = ["CONDITIONS", "OrdersClaimFigures", "measure_orders_claim"]

CONDITIONS: Final = ("normal", "slow", "outage")
VARIANTS: Final = ("async", "sync")
_SKUS: Final = 20
_STOCK: Final = 10_000_000
_PREFIX: Final = "stockflow-bench-claims-orders-"


class OrdersClaimFigures(msgspec.Struct, kw_only=True):
    rows: dict[str, dict[str, LoopFigures]]
    """By condition, then variant."""
    p50_change: dict[str, float]
    """Per condition: async p50 relative to sync's (-0.9 = 90% lower; the seed: -90%)."""
    p99_change: dict[str, float]
    settled_ms: dict[str, dict[str, float]]
    """Per condition: the async orders' placement-to-settled p50/p99/max (ms)."""
    audits: dict[str, bool]
    """By variant."""
    settings: dict[str, Any]


@dataclass
class _System:
    """One variant: its backend, its processes and edge's URL."""

    name: str
    backend: BenchBackend
    edge: ServiceProcess
    inventory: WorkerProcess
    processes: list[ServiceProcess]
    proxy: FaultProxy | None = None
    listener: SettlementListener | None = None
    accepted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Placements:
    tokens: Tokens
    concurrency: int
    run: str

    def headers(self, sender: int) -> dict[str, str]:
        token = self.tokens(f"claims-{self.run}-c{sender}", "customer")
        return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def _systems(token: str, jwt_secret: str, run: str) -> AsyncIterator[dict[str, _System]]:
    backends: list[BenchBackend] = []
    systems: dict[str, _System] = {}
    try:
        product = embedded_backend(_PREFIX)
        backends.append(product)
        await product.add_orders_database()
        saga = SagaServices(product, token)
        edge = edge_process(
            token,
            jwt_secret,
            {"orders": saga.orders_url, "inventory": saga.inventory_url},
            bus_url=product.bus_url,
            name="edge (async)",
        )
        systems["async"] = _System("async", product, edge, saga.inventory, [edge, saga.orders])
        await saga.start()
        await start_all([edge])

        fixture = embedded_backend(_PREFIX)
        backends.append(fixture)
        inventory = inventory_process(fixture, token)
        await inventory.start()
        proxy = FaultProxy("127.0.0.1", inventory.port)
        await proxy.start()
        orders = fixture_process(
            "sync_orders",
            token,
            ["--inventory-url", proxy.url, "--database", str(fixture.workdir / "sync.sqlite3")],
            name="sync orders",
        )
        edge_sync = edge_process(
            token,
            jwt_secret,
            {"orders": orders.base_url, "inventory": inventory.base_url},
            bus_url=fixture.bus_url,
            name="edge (sync)",
        )
        systems["sync"] = _System(
            "sync", fixture, edge_sync, inventory, [edge_sync, orders], proxy=proxy
        )
        await start_all([orders, edge_sync])
        stock = {f"CLAIM-{run}-{i:02d}": _STOCK for i in range(_SKUS)}
        async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
            for system in systems.values():
                await receive_stock(http, system.inventory.base_url, token, stock, run)
        listener = SettlementListener(product.bus_url, durable=f"claims-{run}")
        await listener.start()
        systems["async"].listener = listener
        yield systems
    finally:
        for system in systems.values():
            if system.listener is not None:
                await system.listener.close()
            await stop_all(system.processes)
            await system.inventory.stop()
            if system.proxy is not None:
                await system.proxy.stop()
        for backend in backends:
            await backend.cleanup()


async def _outage(inventory: WorkerProcess, after: float, seconds: float) -> None:
    await asyncio.sleep(after)
    inventory.service.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        inventory.service.send_signal(signal.SIGCONT)


async def _window(
    system: _System,
    condition: str,
    placements: _Placements,
    *,
    seconds: float,
    slow_ms: float,
    outage: float,
) -> LoopFigures:
    headers = [placements.headers(i) for i in range(placements.concurrency)]
    skus = [f"CLAIM-{placements.run}-{i:02d}" for i in range(_SKUS)]
    rng = random.Random(f"{condition}-{placements.run}")
    accepted: list[str] = []

    def make(sender: int, n: int) -> Request:
        lines = {rng.choice(skus): rng.randint(1, 3) for _ in range(rng.randint(1, 3))}
        key = f"claims-{placements.run}-{system.name}-{condition}-{sender}-{n}"
        body = {"lines": [{"sku": sku, "qty": qty} for sku, qty in lines.items()]}
        return Request("POST", "/orders", {**headers[sender], "Idempotency-Key": key}, body)

    def observe(_request: Request, response: RawResponse) -> None:
        if response.status_code == 202:
            accepted.append(response.json()["id"])

    if system.proxy is not None:
        system.proxy.set_fault(Latency(slow_ms / 1000.0) if condition == "slow" else PASS_THROUGH)
    fault = (
        asyncio.create_task(_outage(system.inventory, seconds / 3, outage))
        if condition == "outage"
        else None
    )
    try:
        figures = await run_closed_loop(
            system.edge.base_url,
            make,
            concurrency=placements.concurrency,
            seconds=seconds,
            observe=observe,
        )
    finally:
        if fault is not None:
            await fault
        if system.proxy is not None:
            system.proxy.set_fault(PASS_THROUGH)
    system.accepted = accepted
    return figures


async def _settled_ms(system: _System, started: float) -> dict[str, float]:
    """Wait until every accepted async order settled; its placement-to-settled times."""
    listener = system.listener
    if listener is None or not system.accepted:
        return {}
    await listener.until_settled(system.accepted)
    times = sorted(
        (listener.settled[i].at - listener.placed_at.get(i, started)) * 1000.0
        for i in system.accepted
    )
    return {
        "p50": round(percentile(times, 50), 1),
        "p99": round(percentile(times, 99), 1),
        "max": round(times[-1], 1),
    }


async def measure_orders_claim(
    credentials: Credentials,
    *,
    seconds: float,
    concurrency: int,
    slow_ms: float,
    outage: float,
    say: Callable[[str], None],
) -> OrdersClaimFigures:
    """Start both systems, run every condition on each, audit both; the figures."""
    tokens, jwt_secret, token = (
        credentials.tokens,
        credentials.jwt_secret,
        credentials.service_token,
    )
    run = credentials.run
    placements = _Placements(tokens=tokens, concurrency=concurrency, run=run)
    rows: dict[str, dict[str, LoopFigures]] = {}
    settled: dict[str, dict[str, float]] = {}
    async with _systems(token, jwt_secret, run) as systems:
        say("  both systems ready; stock received")
        for condition in CONDITIONS:
            rows[condition] = {}
            for variant in VARIANTS:
                system = systems[variant]
                started = time.time()
                row = await _window(
                    system,
                    condition,
                    placements,
                    seconds=seconds,
                    slow_ms=slow_ms,
                    outage=outage,
                )
                rows[condition][variant] = row
                if variant == "async":
                    settled[condition] = await _settled_ms(system, started)
                say(
                    f"  {condition:<6} {variant:<5}: {row.ok_per_s:,.0f} ok/s,"
                    f" p50 {row.p50_ms:g} ms, p99 {row.p99_ms:g} ms,"
                    f" errors {row.errors} ({row.error_rate:.1%})"
                )
        for system in systems.values():
            await stop_all(system.processes)
            await system.inventory.stop()
        audits = {}
        for variant, system in systems.items():
            say(f"  auditing the {variant} system ...")
            audits[variant] = await system.backend.audit(say)
    return OrdersClaimFigures(
        rows=rows,
        p50_change={c: change(rows[c]["async"].p50_ms, rows[c]["sync"].p50_ms) for c in CONDITIONS},
        p99_change={c: change(rows[c]["async"].p99_ms, rows[c]["sync"].p99_ms) for c in CONDITIONS},
        settled_ms=settled,
        audits=audits,
        settings={
            "seconds": seconds,
            "concurrency": concurrency,
            "slow_ms": slow_ms,
            "outage_seconds": outage,
        },
    )
