"""The figures of ``stockflow bench orders``: computed from the placements and the bus, printed
as a table.

Clocks: every time is this machine's wall clock (the bench's ``time.time()`` and the
services' ``occurred_at``), so differences between them are meaningful.

* ``accepted_per_s``: 202 answers / (first placement sent -> last 202 received);
* ``settled_per_s``: settled orders / (first placement sent -> last settlement's
  ``occurred_at``), the end-to-end rate: orders -> bus -> inventory -> bus -> orders;
* ``latency_ms`` (placement to settled): settlement ``occurred_at`` - the client's send time
  of the placement's first attempt. This is the honest one: it includes the HTTP call and any
  shedding, which ``OrderPlaced``'s ``occurred_at`` (stamped inside the orders service) would
  hide; the split is given as ``accept_ms`` (send -> 202) and ``saga_ms``
  (``OrderPlaced`` -> settled, the asynchronous part);
* ``inventory_alone``: the same mix reserved by the inventory alone, and
  ``saga_cost`` = its rate / ``settled_per_s`` (when that phase ran at an unlimited rate;
  paced, its rate is the pace, and the comparison is its latency next to ``saga_ms``).

A run whose audit failed (either phase's) counts as zero: every rate is 0 and the status says so.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from stockflow.bench.figures import percentile
from stockflow.bench.orders_http import Placements
from stockflow.bench.reservations import InventoryAlone
from stockflow.bench.settlements import Settlement

__all__ = ["OrdersFigures", "compute_orders_figures", "print_orders_figures"]


class OrdersFigures(msgspec.Struct, kw_only=True):
    """One run of ``stockflow bench orders``; see the module docstring for each figure."""

    status: str
    audit_ok: bool
    config: dict[str, Any]
    orders: int
    accepted: int
    failed: int
    shed_503: int
    confirmed: int
    rejected: int
    rejected_by_reason: dict[str, int]
    conflicting_settlements: int
    units_ordered: int
    units_received: int
    accepted_per_s: float
    settled_per_s: float
    placement_span_s: float
    settlement_span_s: float
    latency_ms: dict[str, float]
    accept_ms: dict[str, float]
    saga_ms: dict[str, float]
    inventory_alone: InventoryAlone | None = None
    saga_cost: float | None = None
    """Inventory-alone reservations/s over ``settled_per_s`` (how many times faster); ``None``
    when that phase was paced (``--inventory-rate``) or did not run."""
    cpu_ms_per_order: dict[str, float] = msgspec.field(default_factory=dict)
    """CPU time per accepted order of each process (orders, inventory, the bench itself,
    which also runs the HTTP client), first placement to last settlement."""


def _spread(values: list[float], *quantiles: int) -> dict[str, float]:
    ordered = sorted(values)
    spread = {f"p{q}": round(percentile(ordered, q), 1) for q in quantiles}
    spread["max"] = round(ordered[-1], 1) if ordered else 0.0
    return spread


def compute_orders_figures(
    *,
    config: dict[str, Any],
    placements: Placements,
    settled: dict[str, Settlement],
    placed_at: dict[str, float],
    conflicting: int,
    units: tuple[int, int],
    audit_ok: bool,
    inventory_alone: InventoryAlone | None,
    cpu_s: dict[str, float] | None = None,
) -> OrdersFigures:
    """The figures of one run (*units*: ordered, received; *cpu_s*: CPU seconds per process
    over the saga phase)."""
    sent = placements.sent_at
    first = min(sent.values(), default=0.0)
    ids = placements.order_ids
    ours = {index: settled[order_id] for index, order_id in ids.items() if order_id in settled}
    accept_span = max(placements.accepted_at.values(), default=first) - first
    settle_span = max((s.at for s in ours.values()), default=first) - first
    ok = audit_ok and (inventory_alone is None or inventory_alone.audit_ok)
    accepted_rate = len(placements.accepted_at) / accept_span if ok and accept_span > 0 else 0.0
    settled_rate = len(ours) / settle_span if ok and settle_span > 0 else 0.0
    reasons = Counter(s.reason or "?" for s in ours.values() if s.status == "REJECTED")
    alone = None
    if inventory_alone is not None and inventory_alone.publish_rate_target is None:
        alone = inventory_alone.reservations_per_s
    return OrdersFigures(
        status="OK" if ok else "FAILED (audit)",
        audit_ok=ok,
        config=config,
        orders=len(sent),
        accepted=len(placements.accepted_at),
        failed=len(placements.failed),
        shed_503=placements.shed,
        confirmed=sum(1 for s in ours.values() if s.status == "CONFIRMED"),
        rejected=sum(reasons.values()),
        rejected_by_reason=dict(sorted(reasons.items())),
        conflicting_settlements=conflicting,
        units_ordered=units[0],
        units_received=units[1],
        accepted_per_s=round(accepted_rate, 1),
        settled_per_s=round(settled_rate, 1),
        placement_span_s=round(accept_span, 3),
        settlement_span_s=round(settle_span, 3),
        latency_ms=_spread([(s.at - sent[i]) * 1000 for i, s in ours.items()], 50, 95, 99),
        accept_ms=_spread(
            [(at - sent[i]) * 1000 for i, at in placements.accepted_at.items()], 50, 99
        ),
        saga_ms=_spread(
            [(s.at - placed_at[ids[i]]) * 1000 for i, s in ours.items() if ids[i] in placed_at],
            50,
            99,
        ),
        inventory_alone=inventory_alone,
        saga_cost=round(alone / settled_rate, 2) if alone and settled_rate else None,
        cpu_ms_per_order={
            name: round(seconds * 1000 / len(placements.accepted_at), 2)
            for name, seconds in (cpu_s or {}).items()
            if placements.accepted_at
        },
    )


def _ms(spread: dict[str, float]) -> str:
    return " / ".join(f"{value:,.0f}" for value in spread.values())


def print_orders_figures(figures: OrdersFigures, console: Console | None = None) -> None:
    out = console or Console()
    table = Table(
        title=f"stockflow bench orders: {figures.status}",
        caption="orders -> bus -> inventory -> bus -> orders; times on this machine's clock",
        show_header=False,
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    config = figures.config
    rows: list[tuple[str, str]] = [
        ("backend", str(config.get("backend"))),
        (
            "orders / SKUs / concurrency",
            f"{figures.orders:,} / {config.get('skus')} / {config.get('concurrency')}",
        ),
        (
            "units ordered / received (stock factor)",
            f"{figures.units_ordered:,} / {figures.units_received:,} ({config.get('stock_factor')})",
        ),
        (
            "accepted (202) / failed / 503s retried",
            f"{figures.accepted:,} / {figures.failed:,} / {figures.shed_503:,}",
        ),
        ("orders/s accepted (first send -> last 202)", f"{figures.accepted_per_s:,.0f}"),
        (
            "orders/s settled end to end (first send -> last settled)",
            f"{figures.settled_per_s:,.0f}",
        ),
        ("placement to settled p50 / p95 / p99 / max (ms)", _ms(figures.latency_ms)),
        ("  of which send -> 202 p50 / p99 / max (ms)", _ms(figures.accept_ms)),
        ("  of which OrderPlaced -> settled p50 / p99 / max (ms)", _ms(figures.saga_ms)),
        ("confirmed / rejected", f"{figures.confirmed:,} / {figures.rejected:,}"),
    ]
    if figures.rejected_by_reason:
        reasons = ", ".join(f"{k} {v:,}" for k, v in figures.rejected_by_reason.items())
        rows.append(("rejected by reason", reasons))
    if figures.cpu_ms_per_order:
        rows.append(
            (
                "CPU ms per order: " + " / ".join(figures.cpu_ms_per_order),
                " / ".join(f"{v:,.2f}" for v in figures.cpu_ms_per_order.values()),
            )
        )
    if figures.conflicting_settlements:
        rows.append(("orders settled both ways (must be 0)", f"{figures.conflicting_settlements}"))
    alone = figures.inventory_alone
    if alone is not None:
        target = alone.publish_rate_target
        rows += [
            (
                "inventory alone: reservations/s (same mix, ReserveStock on the bus, "
                + ("rate unlimited)" if target is None else f"paced at {target:,.0f}/s)"),
                f"{alone.reservations_per_s:,.0f}",
            ),
            ("inventory alone: reserved / rejected", f"{alone.reserved:,} / {alone.rejected:,}"),
            (
                "inventory alone: publish -> settled p50 / p99 / max (ms)"
                + (" (mostly backlog)" if target is None else ""),
                _ms(alone.latency_ms),
            ),
            (
                "saga cost: inventory-alone rate / end-to-end rate",
                f"{figures.saga_cost:,.2f}x"
                if figures.saga_cost is not None
                else "- (paced: compare the latencies)",
            ),
        ]
    rows.append(("audit", "passed" if figures.audit_ok else "FAILED: the run counts as zero"))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
