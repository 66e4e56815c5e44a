"""``stockflow bench orders``: orders placed and settled end to end, then the audit.

1. generate the order mix and its stock (:mod:`stockflow.bench.order_mix`) and a fresh
   backend with an orders database (:mod:`stockflow.bench.backends`);
2. start ``stockflow serve inventory`` and ``stockflow serve orders`` as subprocesses
   (:mod:`stockflow.bench.saga_services`), receive the stock over HTTP;
3. subscribe to ``orders.events`` with the bench's own durable (:mod:`.settlements`), then
   place every order over HTTP from ``concurrency`` closed-loop senders (:mod:`.orders_http`);
4. wait until every accepted order's ``OrderConfirmed`` / ``OrderRejected`` is on the bus;
5. SIGTERM the services, run ``stockflow audit`` on both stores (a subprocess): a failed
   audit makes the run FAILED with every rate 0;
6. unless disabled, the comparison phase on a second fresh backend: the inventory alone
   reserving the same mix from ``ReserveStock`` commands (:mod:`.reservations`).

The bench talks to the services over HTTP and the bus only; it imports neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stockflow.bench.backends import BenchBackend, distributed_backend, embedded_backend
from stockflow.bench.http_servers import credential_env
from stockflow.bench.order_mix import OrderMix, generate_order_mix
from stockflow.bench.orders_figures import (
    OrdersFigures,
    compute_orders_figures,
    print_orders_figures,
)
from stockflow.bench.orders_http import Placements, place_orders, receive_stock
from stockflow.bench.reservations import InventoryAlone, measure_inventory_alone
from stockflow.bench.saga_services import SagaServices
from stockflow.bench.settlements import SettlementListener

__all__ = ["OrdersBenchConfig", "run_orders_bench"]

_PREFIX: Final = "stockflow-bench-orders-"


@dataclass(frozen=True)
class OrdersBenchConfig:
    backend: str = "embedded"
    orders: int = 2000
    skus: int = 50
    concurrency: int = 32
    stock_factor: float = 1.2
    seed: int = 42
    compare_inventory: bool = True
    """Also run the inventory-alone phase (the in-run comparison)."""
    inventory_rate: float | None = None
    """ReserveStock commands/s in that phase; ``None``: as fast as the bus takes them."""
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    nats_url: str = "nats://127.0.0.1:4222"
    json_file: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """The settings that shape the figures (not where the JSON goes)."""
        return {name: value for name, value in vars(self).items() if name != "json_file"}


def run_orders_bench(config: OrdersBenchConfig, console: Console | None = None) -> int:
    """Run the benchmark; print and write the figures. Returns the exit code (0, or 1)."""
    err = console or Console(stderr=True)
    result = asyncio.run(_run(config, err))
    print_orders_figures(result)
    if config.json_file is not None:
        config.json_file.write_bytes(msgspec.json.format(msgspec.json.encode(result)))
        err.print(f"wrote {config.json_file}")
    return 0 if result.audit_ok else 1


@contextlib.asynccontextmanager
async def _backend(config: OrdersBenchConfig) -> AsyncIterator[BenchBackend]:
    if config.backend == "embedded":
        backend = embedded_backend(_PREFIX)
    else:
        backend = await distributed_backend(config.postgres_url, config.nats_url, _PREFIX)
    try:
        yield backend
    finally:
        await backend.cleanup()


async def _run(config: OrdersBenchConfig, console: Console) -> OrdersFigures:
    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    mix = generate_order_mix(
        orders=config.orders, skus=config.skus, stock_factor=config.stock_factor, seed=config.seed
    )
    say(
        f"{len(mix.orders)} orders over {config.skus} SKUs (seed {config.seed}):"
        f" {mix.units_ordered} units ordered, {mix.units_received} received"
    )
    token = credential_env()["STOCKFLOW_SERVICE_TOKEN"]
    run = uuid.uuid4().hex[:10]
    async with _backend(config) as backend:
        await backend.add_orders_database()
        placements, listener, cpu = await _saga(backend, mix, token, run, config, console, say)
        say("auditing ...")
        audit_ok = await backend.audit(say)
    alone: InventoryAlone | None = None
    if config.compare_inventory:
        say("comparison: the inventory alone, same mix, on a fresh backend ...")
        async with _backend(config) as fresh:
            alone = await measure_inventory_alone(
                fresh, mix, token=token, run=run, rate=config.inventory_rate, say=say
            )
    return compute_orders_figures(
        config=config.to_json(),
        placements=placements,
        settled=listener.settled,
        placed_at=listener.placed_at,
        conflicting=len(listener.conflicting),
        units=(mix.units_ordered, mix.units_received),
        audit_ok=audit_ok,
        inventory_alone=alone,
        cpu_s=cpu,
    )


async def _saga(
    backend: BenchBackend,
    mix: OrderMix,
    token: str,
    run: str,
    config: OrdersBenchConfig,
    console: Console,
    say: Callable[[str], None],
) -> tuple[Placements, SettlementListener, dict[str, float]]:
    """Steps 2-4 and the services' stop: the placements, what the bus said, and the CPU
    seconds each process used from the first placement to the last settlement."""
    services = SagaServices(backend, token)
    await services.start()
    listener = SettlementListener(backend.bus_url, durable=f"bench-{run}")
    try:
        limits = httpx.Limits(max_connections=config.concurrency)
        async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:
            await receive_stock(http, services.inventory_url, token, mix.stock, run)
            say(
                f"services ready (inventory :{services.inventory.port},"
                f" orders :{services.orders.port}); stock received; placing ..."
            )
            await listener.start()
            before = {**services.cpu_seconds(), "bench": time.process_time()}
            placements = await _place_with_progress(
                http, services.orders_url, token, mix, run, config, listener, console
            )
            after = {**services.cpu_seconds(), "bench": time.process_time()}
        if placements.failed:
            index, why = next(iter(placements.failed.items()))
            say(f"{len(placements.failed)} orders were never accepted (order {index}: {why})")
        say(f"every order settled ({len(listener.settled)} settlements on the bus)")
    finally:
        await listener.close()
        await services.stop()
    cpu = {name: round(after[name] - before[name], 2) for name in after if name in before}
    return placements, listener, cpu


async def _place_with_progress(
    http: httpx.AsyncClient,
    orders_url: str,
    token: str,
    mix: OrderMix,
    run: str,
    config: OrdersBenchConfig,
    listener: SettlementListener,
    console: Console,
) -> Placements:
    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        accepted = progress.add_task("accepted", total=len(mix.orders))
        settled = progress.add_task("settled", total=len(mix.orders))

        async def follow() -> None:
            while True:
                progress.update(settled, completed=len(listener.settled))
                await asyncio.sleep(0.2)

        follower = asyncio.create_task(follow())
        try:
            placements = await place_orders(
                http,
                orders_url,
                token,
                mix,
                run=run,
                concurrency=config.concurrency,
                accepted=lambda _index: progress.advance(accepted),
            )
            progress.update(settled, total=len(placements.order_ids))
            await listener.until_settled(set(placements.order_ids.values()))
            progress.update(settled, completed=len(placements.order_ids))
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    return placements
