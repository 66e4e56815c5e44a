"""The figures of ``stockflow bench events``: computed from the store, printed as a table."""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec
from rich.console import Console
from rich.table import Table

from stockflow.bench.growth import GrowthCurve
from stockflow.bench.workload import Workload

__all__ = [
    "RELAY_SCOPE",
    "WITHOUT_RELAY_SCOPE",
    "EventsFigures",
    "compute_figures",
    "percentile",
    "print_figures",
]

WITHOUT_RELAY_SCOPE: Final = (
    "commands on the bus -> events durable + projection + ack;"
    " relaying events to the bus is excluded (INVENTORY_PUBLISH_EVENTS=false)"
)
RELAY_SCOPE: Final = (
    "commands on the bus -> events durable + projection + ack, while the worker relays its"
    " events to the bus (INVENTORY_PUBLISH_EVENTS=true); 'all relayed' is timed separately"
)


class EventsFigures(msgspec.Struct, kw_only=True):
    """One run. Every rate is 0 when the audit failed (the run counts as zero).

    ``scope`` says what the events/s figures include (the relay or not); ``lag_ms`` means
    the pipeline's latency only at a sustainable ``publish_rate_target``: unlimited (``None``),
    it mostly measures how long commands waited in the backlog.
    """

    status: str
    audit_ok: bool
    config: dict[str, Any]
    relay: bool
    scope: str
    publish_rate_target: float | None
    publish_rate_achieved: float
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
    relay_done_s: float | None = None
    events_per_s_relayed: float | None = None
    eventsourcing: dict[str, Any] | None = None
    ratio_vs_eventsourcing: float | None = None
    eventsourcing_one_per_save: dict[str, Any] | None = None
    growth: GrowthCurve | None = None
    """The run cut into tenths (:mod:`stockflow.bench.growth`), on the preloaded log if any."""
    preload: dict[str, Any] | None = None
    """The history written before the run (``--preload``): events, ids, seconds."""
    conventional: dict[str, Any] | None = None
    ratio_vs_conventional: float | None = None
    ceiling: dict[str, Any] | None = None
    """The bare stack doing the same work (``--ceiling``, :mod:`stockflow.bench.ceiling`)."""
    fraction_of_ceiling: float | None = None


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
    relay: bool = False,
    relayed_at: float | None = None,
    rate_target: float | None = None,
    publish_done_at: float | None = None,
) -> EventsFigures:
    """The figures of one run; *relayed_at* is when every event was on the bus (``--relay``)."""
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
    publish_s = (publish_done_at or done_at) - first_publish
    relay_s = relayed_at - first_publish if relayed_at is not None else None
    return EventsFigures(
        status="OK" if audit_ok else "FAILED (audit)",
        audit_ok=audit_ok,
        config=config,
        relay=relay,
        scope=RELAY_SCOPE if relay else WITHOUT_RELAY_SCOPE,
        publish_rate_target=rate_target,
        publish_rate_achieved=(
            round(len(workload.envelopes) / publish_s, 1) if publish_s > 0 else 0.0
        ),
        relay_done_s=round(relay_s, 3) if relay_s is not None else None,
        events_per_s_relayed=(
            (round(events / relay_s, 1) if audit_ok else 0.0)
            if relay_s is not None and relay_s > 0
            else None
        ),
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
    table = Table(
        title=f"stockflow bench events: {figures.status}",
        caption=f"events/s: {figures.scope}",
        show_header=False,
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    target = figures.publish_rate_target
    rows: list[tuple[str, str]] = [
        ("backend", str(figures.config.get("backend"))),
        ("worker feeder (INVENTORY_FEEDER)", str(figures.config.get("feeder", "inline"))),
        (
            "relay events to the bus",
            "yes (included)" if figures.relay else "no (excluded from the figures)",
        ),
        (
            "publish rate target / achieved (commands/s)",
            f"{'unlimited' if target is None else f'{target:,.0f}'}"
            f" / {figures.publish_rate_achieved:,.0f}",
        ),
        ("envelopes published (incl. duplicates)", f"{figures.envelopes_published:,}"),
        ("unique commands", f"{figures.unique_commands:,}"),
        ("events committed", f"{figures.events:,}"),
        ("events/s (commit span)", f"{figures.events_per_s:,.0f}"),
        ("events/s (first publish -> all processed)", f"{figures.events_per_s_wall:,.0f}"),
        ("commands/s (wall)", f"{figures.commands_per_s:,.0f}"),
        (
            "lag p50 / p99 / max (ms)"
            + (" (mostly backlog: unlimited rate)" if not target else ""),
            " / ".join(f"{v:,.0f}" for v in figures.lag_ms.values()),
        ),
    ]
    if figures.events_per_s_relayed is not None:
        rows.append(
            ("events/s (first publish -> all relayed)", f"{figures.events_per_s_relayed:,.0f}")
        )
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
    if figures.eventsourcing_one_per_save is not None:
        one = figures.eventsourcing_one_per_save
        capped = (
            f" (capped at {one['capped_at_seconds']:.0f} s)" if one["capped_at_seconds"] else ""
        )
        rows.append((f"eventsourcing events/s, 1 per save{capped}", f"{one['events_per_s']:,.0f}"))
    if figures.conventional is not None:
        conv = figures.conventional
        capped = (
            f" (capped at {conv['capped_at_seconds']:.0f} s)" if conv["capped_at_seconds"] else ""
        )
        rows += [
            (f"conventional design events/s{capped}", f"{conv['events_per_s']:,.0f}"),
            (
                "conventional audit",
                "passed" if not conv["audit_violations"] else "; ".join(conv["audit_violations"]),
            ),
            ("conventional final stock = reference", str(conv["final_stock_matches_reference"])),
            ("ratio ours / conventional", str(figures.ratio_vs_conventional)),
        ]
    if figures.ceiling is not None:
        ceiling = figures.ceiling
        capped = (
            f" (capped at {ceiling['capped_at_seconds']:.0f} s)"
            if ceiling["capped_at_seconds"]
            else ""
        )
        rows += [
            (f"ceiling (bare stack) events/s{capped}", f"{ceiling['events_per_s']:,.0f}"),
            ("ours / ceiling", str(figures.fraction_of_ceiling)),
        ]
    if figures.preload is not None:
        rows.append(
            (
                "preloaded events (written in s)",
                f"{figures.preload['events']:,} ({figures.preload['seconds']:,.0f})",
            )
        )
    if figures.growth is not None and figures.growth.tenths:
        first, last = figures.growth.tenths[0], figures.growth.tenths[-1]
        rows += [
            (
                "events/s first / last tenth",
                f"{first.events_per_s:,.0f} / {last.events_per_s:,.0f}"
                + (
                    f" ({figures.growth.last_vs_first}x)"
                    if figures.growth.last_vs_first is not None
                    else " (a tenth within one commit: too short a run)"
                ),
            ),
            (
                "mean commit ms first / last tenth",
                f"{first.mean_commit_ms} / {last.mean_commit_ms}",
            ),
        ]
    rows.append(("audit", "passed" if figures.audit_ok else "FAILED: run counts as zero"))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
