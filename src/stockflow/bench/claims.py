"""``stockflow bench claims``: the seed article's three measured claims, reproduced in one run.

1. **Consolidation** (:mod:`.claims_profiles`): "throughput increased by two times and the
   p99 latency was down by 65 percent" after four fragmented profile services became one;
2. **Async on the critical path** (:mod:`.claims_orders`): "user-facing latency was reduced
   by 90%" by notifying over the bus rather than synchronous REST;
3. **12,000 events/s with zero phantom stock** (:mod:`.events`): ``stockflow bench events``
   on both backends, with the eventsourcing library on the same workload in the same run.

Each verdict is computed from ratios measured inside this run against the seed's figure
(:data:`SEED`), never written by hand; absolute times on a shared machine vary from run to
run, ratios between variants measured side by side are the result. Each experiment ends with
its audit, and a failed audit makes the run FAILED (exit 1). The figures go to stdout (a
table), ``--json`` and a markdown report with its PNG plots (:mod:`.claims_figures`).
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from stockflow.bench.claims_orders import CONDITIONS, OrdersClaimFigures, measure_orders_claim
from stockflow.bench.claims_processes import Credentials, Tokens
from stockflow.bench.claims_profiles import ProfilesClaimFigures, measure_profiles_claim
from stockflow.bench.closed_loop import LoopFigures
from stockflow.bench.events import EventsBenchConfig, measure_events
from stockflow.bench.figures import EventsFigures

__all__ = ["SEED", "ClaimsConfig", "ClaimsReport", "Verdict", "run_claims"]

SEED: Final = {
    "consolidation_throughput_ratio": 2.0,
    "consolidation_p99_change": -0.65,
    "async_latency_change": -0.90,
    "events_per_s": 12_000.0,
}
"""The seed article's figures, which the verdicts compare the measured ones against."""


@dataclass(frozen=True)
class ClaimsConfig:
    tokens: Tokens
    jwt_secret: str
    quick: bool = False
    seconds: float | None = None
    """Measured seconds per load window (default 15, quick 3)."""
    events: int | None = None
    """Events of claim 3's workload per backend (default 100,000, quick 5,000)."""
    concurrency: int = 32
    """Claim 1's closed-loop senders: enough to saturate the paths (throughput is the claim)."""
    order_senders: int = 8
    """Claim 2's: fewer, so latency measures the path rather than the queue (at saturation a
    closed loop's latency is senders / throughput, whichever path)."""
    slow_ms: float = 50.0
    outage: float | None = None
    """Seconds the inventory is stopped in claim 2's outage (default 5, or a third of the
    window when that is less: quick 1)."""
    backends: tuple[str, ...] = ("embedded", "distributed")
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    nats_url: str = "nats://127.0.0.1:4222"

    @property
    def window(self) -> float:
        return self.seconds if self.seconds is not None else (3.0 if self.quick else 15.0)

    @property
    def warmup(self) -> float:
        return min(2.0, self.window / 4)

    @property
    def outage_seconds(self) -> float:
        return self.outage if self.outage is not None else min(5.0, self.window / 3)

    @property
    def workload_events(self) -> int:
        return self.events if self.events is not None else (5_000 if self.quick else 100_000)


class Verdict(msgspec.Struct, kw_only=True):
    claim: str
    seed: str
    """The seed's figure, as the article states it."""
    measured: str
    verdict: str
    """``REPRODUCED``, ``PARTLY`` (some of the figures), ``NOT REPRODUCED`` or ``FAILED``
    (an audit failed: the figures do not count)."""
    audit_ok: bool


class ClaimsReport(msgspec.Struct, kw_only=True):
    status: str
    """``OK``, or ``FAILED`` when an audit failed."""
    started_at: str
    seconds: float
    machine: dict[str, Any]
    settings: dict[str, Any]
    verdicts: list[Verdict]
    consolidation: ProfilesClaimFigures
    async_path: OrdersClaimFigures
    events: dict[str, EventsFigures]


def _verdict(met: list[bool], audit_ok: bool) -> str:
    if not audit_ok:
        return "FAILED"
    if all(met):
        return "REPRODUCED"
    return "PARTLY" if any(met) else "NOT REPRODUCED"


def _pct(change: float) -> str:
    return f"{change:+.0%}"


def verdicts(
    consolidation: ProfilesClaimFigures,
    async_path: OrdersClaimFigures,
    events: dict[str, EventsFigures],
) -> list[Verdict]:
    """The three verdicts, from the measured ratios and :data:`SEED`."""
    one = consolidation
    two = async_path
    per_condition = ", ".join(f"{c} {_pct(two.p50_change[c])}" for c in CONDITIONS)
    three = [
        f"{name} {figures.events_per_s:,.0f}/s"
        + (
            f" ({figures.ratio_vs_eventsourcing:.2f}x eventsourcing)"
            if figures.ratio_vs_eventsourcing
            else ""
        )
        + ("" if figures.audit_ok else ", audit FAILED")
        for name, figures in events.items()
    ]
    return [
        Verdict(
            claim="1 consolidation",
            seed="throughput 2x, p99 -65%",
            measured=f"throughput {one.throughput_ratio:.2f}x, p99 {_pct(one.p99_change)}"
            f" (p50 {_pct(one.p50_change)})",
            verdict=_verdict(
                [
                    one.throughput_ratio >= SEED["consolidation_throughput_ratio"],
                    one.p99_change <= SEED["consolidation_p99_change"],
                ],
                one.audit_ok,
            ),
            audit_ok=one.audit_ok,
        ),
        Verdict(
            claim="2 async critical path",
            seed="user-facing latency -90%",
            measured=f"p50 {per_condition}",
            verdict=_verdict(
                [two.p50_change[c] <= SEED["async_latency_change"] for c in CONDITIONS],
                all(two.audits.values()),
            ),
            audit_ok=all(two.audits.values()),
        ),
        Verdict(
            claim="3 events/s, zero phantom stock",
            seed=">= 12,000 events/s, audit passes",
            measured="; ".join(three),
            verdict=_verdict(
                [f.events_per_s >= SEED["events_per_s"] for f in events.values()],
                all(f.audit_ok for f in events.values()),
            ),
            audit_ok=all(f.audit_ok for f in events.values()),
        ),
    ]


def machine() -> dict[str, Any]:
    """Where the run ran: what a reader needs to weigh absolute figures."""
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


async def _measure(config: ClaimsConfig, say: Callable[[str], None]) -> ClaimsReport:
    credentials = Credentials(
        tokens=config.tokens,
        jwt_secret=config.jwt_secret,
        service_token=os.environ.get("STOCKFLOW_SERVICE_TOKEN") or secrets.token_urlsafe(16),
        run=uuid.uuid4().hex[:8],
    )
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    host = machine()
    say(f"claim 1: consolidation ({config.window:g} s per path) ...")
    consolidation = await measure_profiles_claim(
        credentials,
        seconds=config.window,
        warmup=config.warmup,
        concurrency=config.concurrency,
        write_share=0.2,
        say=say,
    )
    say(f"claim 2: async on the critical path ({config.window:g} s per window) ...")
    async_path = await measure_orders_claim(
        credentials,
        seconds=config.window,
        concurrency=config.order_senders,
        slow_ms=config.slow_ms,
        outage=config.outage_seconds,
        say=say,
    )
    events: dict[str, EventsFigures] = {}
    for backend in config.backends:
        say(f"claim 3: stockflow bench events --backend {backend} ...")
        events[backend] = await measure_events(
            EventsBenchConfig(
                backend=backend,
                events=config.workload_events,
                postgres_url=config.postgres_url,
                nats_url=config.nats_url,
                compare_conventional=False,  # the claim is against the eventsourcing library
            ),
            say,
        )
    found = verdicts(consolidation, async_path, events)
    return ClaimsReport(
        status="OK" if all(v.audit_ok for v in found) else "FAILED",
        started_at=started_at,
        seconds=round(time.perf_counter() - started, 1),
        machine=host,
        settings={
            "quick": config.quick,
            "window_seconds": config.window,
            "warmup_seconds": config.warmup,
            "concurrency": config.concurrency,
            "order_senders": config.order_senders,
            "slow_ms": config.slow_ms,
            "outage_seconds": config.outage_seconds,
            "events": config.workload_events,
            "backends": list(config.backends),
        },
        verdicts=found,
        consolidation=consolidation,
        async_path=async_path,
        events=events,
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def without_latencies(report: ClaimsReport) -> ClaimsReport:
    """*report* without the raw latency lists (the JSON keeps each run's CDF quantiles)."""

    def bare(row: LoopFigures) -> LoopFigures:
        return msgspec.structs.replace(row, latencies_ms=[])

    one = report.consolidation
    two = report.async_path
    return msgspec.structs.replace(
        report,
        consolidation=msgspec.structs.replace(one, rows={k: bare(v) for k, v in one.rows.items()}),
        async_path=msgspec.structs.replace(
            two,
            rows={c: {v: bare(r) for v, r in rows.items()} for c, rows in two.rows.items()},
        ),
    )


def run_claims(
    config: ClaimsConfig,
    *,
    json_file: Path | None,
    plots: Path,
    report_file: Path | None = None,
    say: Callable[[str], None] = _say,
) -> int:
    """Run the three experiments; print the table, write the plots, the report and the
    JSON. Returns the exit code: 0, or 1 when an audit failed."""
    from stockflow.bench.claims_figures import format_table, plot_claims, write_report

    report = asyncio.run(_measure(config, say))
    print(format_table(report))
    plots.mkdir(parents=True, exist_ok=True)
    images = plot_claims(report, plots)
    target = report_file or plots / "claims.md"
    write_report(report, images, target)
    say(f"wrote {target} and {len(images)} plots in {plots}")
    if json_file is not None:
        encoded = msgspec.json.encode(without_latencies(report))
        json_file.write_bytes(msgspec.json.format(encoded))
        say(f"wrote {json_file}")
    return 0 if report.status == "OK" else 1
