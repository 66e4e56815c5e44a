"""The figures of ``stockflow load``: per step, per kind of request, and the settlements.

* ``accepted_per_s``: placements answered 202 / the step's sending time;
* per kind (``place``, ``replay``, ``browse``, ``receipt``, ``cancel``): count, answers by
  status (transport errors by exception name), latency p50/p95/p99/max in ms from when the
  request was due (open loop), and ``skipped``: due while ``max_in_flight`` were outstanding;
* ``settled_ms``: placement due -> the order's ``updated_at`` when first seen CONFIRMED or
  REJECTED; ``unsettled``: accepted orders still PENDING after the settle timeout;
* ``meets_target``: the issue's bar, p99 of ``place`` under 50 ms, every order settled within
  2 s, no 5xx and no transport error (4xx such as 429 are the system's answer, reported).
* ``client_cpu_ms_per_order``: the generator's own CPU per accepted order; when it nears
  1000 / rate the generator, not the system, is the limit.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import msgspec
from rich.console import Console
from rich.table import Table

from stockflow.bench.figures import percentile
from stockflow.bench.load_bare import BareFigures

__all__ = ["KindFigures", "LoadFigures", "StepFigures", "compute_step", "print_load_figures"]

TARGET_P99_MS: Final = 50.0
TARGET_SETTLED_MS: Final = 2000.0
KINDS: Final = ("place", "replay", "browse", "receipt", "cancel")


class KindFigures(msgspec.Struct, kw_only=True):
    count: int
    by_status: dict[str, int]
    skipped: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class StepFigures(msgspec.Struct, kw_only=True):
    rate: float
    seconds: float
    accepted: int
    accepted_per_s: float
    kinds: dict[str, KindFigures]
    settled: dict[str, int]
    """Orders seen settled, by status."""
    settled_ms: dict[str, float]
    unsettled: int
    replay_mismatches: int
    server_errors: int
    transport_errors: int
    client_cpu_ms_per_order: float
    meets_target: bool


class LoadFigures(msgspec.Struct, kw_only=True):
    url: str
    run: str
    duration_s: float
    steps: list[StepFigures]
    bare: BareFigures | None = None
    """The trivial FastAPI endpoint on the same stack, same client, this run."""

    @property
    def best_rate(self) -> float | None:
        """The highest step rate that met the target."""
        passing = [step.rate for step in self.steps if step.meets_target]
        return max(passing) if passing else None


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    spread = {f"p{q}": round(percentile(ordered, q), 1) for q in (50, 95, 99)}
    spread["max"] = round(ordered[-1], 1) if ordered else 0.0
    return spread


def compute_step(
    *,
    rate: float,
    seconds: float,
    latencies: dict[str, list[float]],
    outcomes: dict[str, Counter[str]],
    skipped: dict[str, int],
    replay_mismatches: int,
    accepted: int,
    settled_ms: list[float],
    statuses: dict[str, int],
    unsettled: int,
    client_cpu_s: float,
) -> StepFigures:
    kinds: dict[str, KindFigures] = {}
    server_errors = transport_errors = 0
    for kind in KINDS:
        answers = outcomes.get(kind, Counter())
        if not answers and not skipped.get(kind):
            continue
        spread = _spread(latencies.get(kind, []))
        kinds[kind] = KindFigures(
            count=sum(answers.values()),
            by_status=dict(sorted(answers.items())),
            skipped=skipped.get(kind, 0),
            p50_ms=spread["p50"],
            p95_ms=spread["p95"],
            p99_ms=spread["p99"],
            max_ms=spread["max"],
        )
        for outcome, count in answers.items():
            if outcome.startswith("5"):
                server_errors += count
            elif not outcome.isdigit():
                transport_errors += count
    settled = _spread(settled_ms)
    place = kinds.get("place")
    meets = (
        place is not None
        and accepted > 0
        and place.p99_ms < TARGET_P99_MS
        and place.skipped == 0
        and unsettled == 0
        and settled["max"] <= TARGET_SETTLED_MS
        and server_errors == 0
        and transport_errors == 0
        and replay_mismatches == 0
    )
    return StepFigures(
        rate=rate,
        seconds=round(seconds, 2),
        accepted=accepted,
        accepted_per_s=round(accepted / seconds, 1) if seconds > 0 else 0.0,
        kinds=kinds,
        settled=statuses,
        settled_ms=settled,
        unsettled=unsettled,
        replay_mismatches=replay_mismatches,
        server_errors=server_errors,
        transport_errors=transport_errors,
        client_cpu_ms_per_order=round(client_cpu_s * 1000.0 / accepted, 2) if accepted else 0.0,
        meets_target=meets,
    )


def print_load_figures(figures: LoadFigures, console: Console | None = None) -> None:
    out = console or Console()
    for step in figures.steps:
        table = Table(
            title=(
                f"{step.rate:g} orders/s offered for {step.seconds:g} s: {step.accepted_per_s:g}"
                f" accepted/s ({step.accepted} orders)"
            ),
            title_justify="left",
        )
        for column in ("request", "count", "answers", "skipped", "p50 ms", "p95 ms", "p99 ms"):
            table.add_column(
                column, justify="left" if column in ("request", "answers") else "right"
            )
        for kind, k in step.kinds.items():
            answers = ", ".join(f"{status}: {n}" for status, n in k.by_status.items())
            table.add_row(
                kind,
                str(k.count),
                answers,
                str(k.skipped),
                f"{k.p50_ms:g}",
                f"{k.p95_ms:g}",
                f"{k.p99_ms:g}",
            )
        out.print(table)
        s = step.settled_ms
        settled = ", ".join(f"{status}: {n}" for status, n in sorted(step.settled.items()))
        out.print(
            f"  placement to settled: p50 {s['p50']:g} ms, p99 {s['p99']:g} ms, max {s['max']:g}"
            f" ms ({settled or 'none'}; {step.unsettled} unsettled)"
        )
        out.print(
            f"  5xx: {step.server_errors}, transport errors: {step.transport_errors}, replay"
            f" mismatches: {step.replay_mismatches}; generator CPU"
            f" {step.client_cpu_ms_per_order:g} ms/order"
        )
        verdict = "meets" if step.meets_target else "misses"
        out.print(
            f"  {verdict} the target (place p99 < {TARGET_P99_MS:g} ms, every order settled"
            f" within {TARGET_SETTLED_MS / 1000:g} s, no 5xx)",
            highlight=False,
        )
    best = figures.best_rate
    out.print(
        "highest rate meeting the target: "
        + (f"{best:g} orders/s" if best is not None else "none of the steps")
    )
    if figures.bare is not None:
        bare = figures.bare
        top = max((step.accepted_per_s for step in figures.steps), default=0.0)
        out.print(
            f"in-run comparison: a trivial FastAPI GET on the same stack (uvicorn, this client)"
            f" serves {bare.req_per_s:,.0f} req/s (p50 {bare.p50_ms:g} ms, p99 {bare.p99_ms:g}"
            f" ms; {bare.kit_req_per_s:,.0f} req/s through the kit's transport,"
            f" {bare.httpx_req_per_s:,.0f} through httpx's own pool); edge accepted at most"
            f" {top:,.0f} orders/s = {top / bare.req_per_s:.2f}x"
            if bare.req_per_s
            else "in-run comparison: the bare endpoint answered nothing"
        )
