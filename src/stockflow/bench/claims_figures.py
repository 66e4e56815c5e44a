"""What ``stockflow bench claims`` shows: the table on stdout, the PNG plots (matplotlib,
the Agg backend: no display needed) and the markdown report that links them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from stockflow.bench.claims import SEED, ClaimsReport
from stockflow.bench.claims_orders import CONDITIONS
from stockflow.bench.closed_loop import LoopFigures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["format_table", "plot_claims", "write_report"]

_DPI: Final = 80
_COLOURS: Final = {"async": "tab:blue", "sync": "tab:red"}


def _loop_row(name: str, row: LoopFigures) -> str:
    return (
        f"| {name} | {row.ok_per_s:,.0f} | {row.p50_ms:,.1f} | {row.p99_ms:,.1f}"
        f" | {row.error_rate:.1%} | {row.requests:,} |"
    )


def _tables(report: ClaimsReport) -> list[str]:
    one, two = report.consolidation, report.async_path
    lines = [
        "| claim | seed | measured (ratios in this run) | verdict |",
        "|---|---|---|---|",
        *(f"| {v.claim} | {v.seed} | {v.measured} | **{v.verdict}** |" for v in report.verdicts),
        "",
        "Claim 1, `GET /me` + `PUT /me` (80/20), closed loop:",
        "",
        "| path | ok/s | p50 ms | p99 ms | errors | requests |",
        "|---|---|---|---|---|---|",
        *(_loop_row(path, row) for path, row in one.rows.items()),
        "",
        f"Consolidated (composer -> profiles) vs fragmented: throughput"
        f" {one.throughput_ratio:.2f}x, p99 {one.p99_change:+.0%}, p50 {one.p50_change:+.0%};"
        f" lost writes {sum(one.lost_writes.values())}.",
        "",
        "Claim 2, `POST /orders` at edge, closed loop:",
        "",
        "| condition / variant | ok/s | p50 ms | p99 ms | errors | requests |",
        "|---|---|---|---|---|---|",
    ]
    for condition in CONDITIONS:
        for variant, row in two.rows[condition].items():
            lines.append(_loop_row(f"{condition} / {variant}", row))
    lines += [
        "",
        "| condition | async p50 vs sync | async p99 vs sync | async placed -> settled p50 / p99 ms |",
        "|---|---|---|---|",
    ]
    for condition in CONDITIONS:
        settled = two.settled_ms.get(condition, {})
        lines.append(
            f"| {condition} | {two.p50_change[condition]:+.0%} | {two.p99_change[condition]:+.0%}"
            f" | {settled.get('p50', 0):,.0f} / {settled.get('p99', 0):,.0f} |"
        )
    audits = ", ".join(f"{v} {'passed' if ok else 'FAILED'}" for v, ok in two.audits.items())
    lines += [
        "",
        f"Audits: {audits}.",
        "",
        "Claim 3, `stockflow bench events`:",
        "",
        "| backend | events/s | eventsourcing events/s | ratio | audit |",
        "|---|---|---|---|---|",
    ]
    for backend, figures in report.events.items():
        theirs = (figures.eventsourcing or {}).get("events_per_s", 0.0)
        ratio = f"{figures.ratio_vs_eventsourcing:.2f}x" if figures.ratio_vs_eventsourcing else "-"
        lines.append(
            f"| {backend} | {figures.events_per_s:,.0f} | {theirs:,.0f} | {ratio}"
            f" | {'passed' if figures.audit_ok else 'FAILED'} |"
        )
    return lines


def format_table(report: ClaimsReport) -> str:
    """The verdicts and every measured row, as markdown tables (readable in a terminal)."""
    return "\n".join([f"status: {report.status} ({report.seconds:g} s)", "", *_tables(report)])


def _cdf(axes: Axes, row: LoopFigures, label: str, colour: str | None = None) -> None:
    from matplotlib.ticker import NullFormatter

    values = row.latencies_ms
    if not values:
        return
    share = [(i + 1) / len(values) for i in range(len(values))]
    axes.plot(values, share, label=label, color=colour, linewidth=1.4)
    axes.set_xscale("log")
    axes.xaxis.set_minor_formatter(NullFormatter())


def plot_claims(report: ClaimsReport, directory: Path) -> list[Path]:
    """Write the plots into *directory*; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(figure: Figure, name: str) -> None:
        path = directory / name
        figure.tight_layout()
        figure.savefig(path, dpi=_DPI)
        plt.close(figure)
        written.append(path)

    one = report.consolidation
    figure, (cdf, bars) = plt.subplots(1, 2, figsize=(10, 3.6))
    for path, row in one.rows.items():
        _cdf(cdf, row, path)
    cdf.set(xlabel="latency ms (log)", ylabel="share of requests")
    cdf.set_title("claim 1: GET/PUT /me latency CDF")
    cdf.legend(fontsize=8)
    cdf.grid(alpha=0.3)
    names = list(one.rows)
    bars.bar(range(len(names)), [one.rows[n].ok_per_s for n in names], color="tab:green")
    bars.set_xticks(range(len(names)), [n.replace(" -> ", "\n-> ") for n in names], fontsize=8)
    bars.set(ylabel="2xx answers / s")
    bars.set_title(f"throughput: consolidated {one.throughput_ratio:.2f}x (seed 2x)")
    save(figure, "claim1-consolidation.png")

    two = report.async_path
    figure, axes = plt.subplots(1, len(CONDITIONS) + 1, figsize=(13, 3.6))
    for condition, axis in zip(CONDITIONS, axes, strict=False):
        for variant, row in two.rows[condition].items():
            _cdf(axis, row, variant, _COLOURS.get(variant))
        axis.set(xlabel="latency ms (log)")
        axis.set_title(f"claim 2, {condition}: p50 {two.p50_change[condition]:+.0%}")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    axes[0].set(ylabel="share of placements")
    rates = axes[-1]
    width = 0.38
    for offset, variant in ((-width / 2, "async"), (width / 2, "sync")):
        rates.bar(
            [i + offset for i in range(len(CONDITIONS))],
            [two.rows[c][variant].ok_per_s for c in CONDITIONS],
            width,
            label=variant,
            color=_COLOURS[variant],
        )
    rates.set_xticks(range(len(CONDITIONS)), list(CONDITIONS))
    rates.set(ylabel="accepted placements / s")
    rates.set_title("throughput")
    rates.legend(fontsize=8)
    save(figure, "claim2-async.png")

    figure, axis = plt.subplots(figsize=(6, 3.6))
    backends = list(report.events)
    ours = [report.events[b].events_per_s for b in backends]
    theirs = [(report.events[b].eventsourcing or {}).get("events_per_s", 0.0) for b in backends]
    axis.bar([i - width / 2 for i in range(len(backends))], ours, width, label="stockflow")
    axis.bar([i + width / 2 for i in range(len(backends))], theirs, width, label="eventsourcing")
    axis.axhline(SEED["events_per_s"], color="black", linestyle="--", linewidth=1, label="12,000")
    axis.set_xticks(range(len(backends)), backends)
    axis.set(ylabel="events / s")
    axis.set_title("claim 3: events/s, same workload, same run")
    axis.legend(fontsize=8)
    save(figure, "claim3-events.png")
    return written


def write_report(report: ClaimsReport, images: list[Path], target: Path) -> None:
    """The markdown report at *target*, the plots linked relative to it."""
    host = report.machine
    lines = [
        "# stockflow bench claims: the seed's measured claims, reproduced",
        "",
        f"Status **{report.status}**; started {report.started_at}, {report.seconds:g} s;"
        f" {host['nproc']} CPUs ({host['platform']}, Python {host['python']}), load average"
        f" at start {', '.join(str(x) for x in host['load_average_at_start'])}.",
        f"Settings: {', '.join(f'{k} {v}' for k, v in report.settings.items())}.",
        "",
        *_tables(report),
        "",
    ]
    for image in images:
        relative = os.path.relpath(image.resolve(), target.parent.resolve())
        lines.append(f"![{image.stem}]({Path(relative).as_posix()})")
        lines.append("")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines))
