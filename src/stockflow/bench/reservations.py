"""The comparison phase of ``stockflow bench orders``: the inventory alone reserving the same
order mix through its own bus commands, on a fresh backend of the same kind.

The same inventory settings as in the saga phase (:func:`~.saga_services.inventory_process`),
the same stock received over HTTP, then one ``ReserveStock`` command per order of the mix on
``inventory.commands`` (:func:`~.pacing.publish_commands`: as fast as the bus takes them, or at
``rate``). An order is settled when its ``StockReserved`` or ``ReservationRejected`` events are
in the store (read with the bench's own SQL, joined on ``causation_id`` = the command's id;
their ``occurred_at`` is the commit's decision time). No orders service, no HTTP per order:
what is left is the inventory's own reservation rate. Ends with the audit of that store.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec

from stockflow.bench.backends import BenchBackend
from stockflow.bench.figures import percentile
from stockflow.bench.order_mix import OrderMix
from stockflow.bench.orders_http import receive_stock
from stockflow.bench.pacing import publish_commands
from stockflow.bench.saga_services import inventory_process
from stockflow.bench.waiting import STALL_SECONDS, wait_for_count
from stockflow.contracts.inventory_commands import CommandLine, ReserveStockCommand
from stockflow_kit.messaging import Envelope

__all__ = ["InventoryAlone", "measure_inventory_alone", "reserve_commands"]


class InventoryAlone(msgspec.Struct, kw_only=True):
    """The inventory-alone phase. Its rate is 0 when its audit failed."""

    audit_ok: bool
    orders: int
    reserved: int
    rejected: int
    publish_rate_target: float | None
    reservations_per_s: float
    """Orders settled / (first publish -> last settlement's ``occurred_at``)."""
    span_s: float
    latency_ms: dict[str, float]
    """Publish -> settlement ``occurred_at``; at an unlimited rate mostly the backlog."""


def reserve_commands(mix: OrderMix, run: str) -> list[Envelope]:
    """One ``ReserveStock`` envelope per order of *mix* (order ids ``bench-<run>-<index>``)."""
    envelopes = []
    for index, lines in enumerate(mix.orders):
        order_id = f"bench-{run}-{index}"
        command = ReserveStockCommand(
            order_id=order_id, lines=[CommandLine(sku=sku, qty=qty) for sku, qty in lines]
        )
        envelopes.append(Envelope.new("ReserveStock", command, source="bench", subject=order_id))
    return envelopes


async def measure_inventory_alone(
    backend: BenchBackend,
    mix: OrderMix,
    *,
    token: str,
    run: str,
    rate: float | None,
    say: Callable[[str], None],
) -> InventoryAlone:
    worker = inventory_process(backend, token)
    await worker.start()
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            await receive_stock(http, worker.base_url, token, mix.stock, run)
        say(f"inventory alone: received stock; publishing {len(mix.orders)} ReserveStock ...")
        commands = reserve_commands(mix, run)
        published, first_publish, _done = await publish_commands(
            backend.bus_url, commands, say, rate=rate
        )
        outcomes = await _wait_settled(backend, set(published), say)
    finally:
        await worker.stop()
    say("auditing the inventory-alone store ...")
    audit_ok = await backend.audit(say)
    settled_at = {cause: at for cause, (at, _kind) in outcomes.items()}
    span = max(settled_at.values()) - first_publish if settled_at else 0.0
    latencies = sorted((settled_at[c] - published[c]) * 1000 for c in settled_at)
    rejected = sum(1 for _at, kind in outcomes.values() if kind == "ReservationRejected")
    return InventoryAlone(
        audit_ok=audit_ok,
        orders=len(commands),
        reserved=len(outcomes) - rejected,
        rejected=rejected,
        publish_rate_target=rate,
        reservations_per_s=round(len(outcomes) / span, 1) if audit_ok and span > 0 else 0.0,
        span_s=round(span, 3),
        latency_ms={
            "p50": round(percentile(latencies, 50), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(latencies[-1], 1) if latencies else 0.0,
        },
    )


async def _wait_settled(
    backend: BenchBackend, command_ids: set[str], say: Callable[[str], None]
) -> dict[str, tuple[float, str]]:
    """Poll the store until every command has its outcome: ``id -> (last event time, kind)``."""
    outcomes: dict[str, tuple[float, str]] = {}
    total = len(command_ids)

    async def settled() -> int:
        outcomes.clear()
        for at, cause, kind in await backend.reservation_outcomes():
            if cause in command_ids:
                previous = outcomes.get(cause)
                outcomes[cause] = (max(at, previous[0]) if previous else at, kind)
        return len(outcomes)

    await wait_for_count(
        settled,
        total,
        report=lambda count: say(f"inventory alone: {count}/{total} orders settled"),
        report_every=2.0,
        stalled=lambda count: (
            f"the inventory settled nothing for {STALL_SECONDS:.0f} s"
            f" ({count}/{total}); see its log above"
        ),
    )
    say(f"inventory alone: {total}/{total} orders settled")
    return outcomes
