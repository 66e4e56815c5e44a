"""The figures of ``stockflow bench events``: computed from the store, printed as a table."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from stockflow.bench.workload import Workload

__all__ = ["EventsFigures", "compute_figures", "percentile", "print_figures"]


class EventsFigures(msgspec.Struct, kw_only=True):
    """One run. ``events_per_s`` is 0 when the audit failed (the run counts as zero)."""

    status: str
    audit_ok: bool
    config: dict[str, Any]
    envelopes_published: int
    unique_commands: int
    events: int
    events_expected_by_model: int
    events_per_s: float
    events_per_s_basis: str
    events_per_s_wall: float
    commands_per_s: float
    commit_span_s: float
    wall_s: float
    lag_ms: dict[str, float]
    batches: dict[str, float]
    eventsourcing: dict[str, Any] | None = None
    ratio_vs_eventsourcing: float | None = None


def percentile(values: list[float], q: float) -> float:
    """The *q*-th percentile (0-100) of sorted *values*, nearest rank; 0 when empty."""
    if not values:
        return 0.0
    rank = max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))
    return values[rank]


def compute_figures(
    *,
    config: dict[str, Any],
    workload: Workload,
    published: dict[str, float],
    first_publish: float,
    done_at: float,
    event_times: list[tuple[float, str | None]],
    metrics: dict[str, float],
    audit_ok: bool,
) -> EventsFigures:
    events = len(event_times)
    times = [t for t, _ in event_times]
    span = (max(times) - min(times)) if times else 0.0
    wall = done_at - first_publish
    lags = sorted((t - published[cause]) * 1000 for t, cause in event_times if cause in published)
    batches: dict[str, float] = {}
    count = metrics.get("inventory_batch_size_count", 0.0)
    if count:
        batches["batches"] = count
        batches["mean_batch_size"] = round(metrics["inventory_batch_size_sum"] / count, 1)
    commits = metrics.get("inventory_commit_duration_seconds_count", 0.0)
    if commits:
        total = metrics["inventory_commit_duration_seconds_sum"]
        batches["mean_commit_ms"] = round(total / commits * 1000, 2)
    basis = "events / (last event occurred_at - first event occurred_at)"
    rate = events / span if span > 0 else 0.0
    if span <= 0 and wall > 0:  # every event in one commit: no span to divide by
        basis, rate = "events / (first publish -> all processed): one commit only", events / wall
    return EventsFigures(
        status="OK" if audit_ok else "FAILED (audit)",
        audit_ok=audit_ok,
        config=config,
        envelopes_published=len(workload.envelopes),
        unique_commands=workload.unique,
        events=events,
        events_expected_by_model=workload.expected_events,
        events_per_s=round(rate, 1) if audit_ok else 0.0,
        events_per_s_basis=basis,
        events_per_s_wall=round(events / wall, 1) if audit_ok and wall > 0 else 0.0,
        commands_per_s=round(workload.unique / wall, 1) if audit_ok and wall > 0 else 0.0,
        commit_span_s=round(span, 3),
        wall_s=round(wall, 3),
        lag_ms={
            "p50": round(percentile(lags, 50), 1),
            "p99": round(percentile(lags, 99), 1),
            "max": round(lags[-1], 1) if lags else 0.0,
        },
        batches=batches,
    )


def print_figures(figures: EventsFigures, console: Console | None = None) -> None:
    out = console or Console()
    table = Table(title=f"stockflow bench events: {figures.status}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("backend", str(figures.config.get("backend"))),
        ("envelopes published (incl. duplicates)", f"{figures.envelopes_published:,}"),
        ("unique commands", f"{figures.unique_commands:,}"),
        ("events committed", f"{figures.events:,}"),
        ("events/s (commit span)", f"{figures.events_per_s:,.0f}"),
        ("events/s (first publish -> all processed)", f"{figures.events_per_s_wall:,.0f}"),
        ("commands/s (wall)", f"{figures.commands_per_s:,.0f}"),
        ("lag p50 / p99 / max (ms)", " / ".join(f"{v:,.0f}" for v in figures.lag_ms.values())),
    ]
    rows += [(f"worker {name.replace('_', ' ')}", f"{v:,}") for name, v in figures.batches.items()]
    if figures.eventsourcing is not None:
        es = figures.eventsourcing
        capped = f" (capped at {es['capped_at_seconds']:.0f} s)" if es["capped_at_seconds"] else ""
        rows += [
            (
                f"eventsourcing events/s, {es['save_batch']} per save{capped}",
                f"{es['events_per_s']:,.0f}",
            ),
            ("eventsourcing final stock = reference", str(es["final_stock_matches_reference"])),
            ("ratio ours / eventsourcing", str(figures.ratio_vs_eventsourcing)),
        ]
    rows.append(("audit", "passed" if figures.audit_ok else "FAILED: run counts as zero"))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
