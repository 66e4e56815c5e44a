"""The verdicts of ``stockflow bench claims`` are computed from the measured ratios against the
seed's figures, and a failed audit turns any figure into FAILED."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from stockflow.bench.claims import verdicts
from stockflow.bench.claims_orders import CONDITIONS, OrdersClaimFigures
from stockflow.bench.claims_profiles import ProfilesClaimFigures
from stockflow.bench.closed_loop import LoopFigures
from stockflow.bench.figures import EventsFigures

ROW = LoopFigures(
    requests=10,
    seconds=1.0,
    requests_per_s=10.0,
    ok_per_s=10.0,
    p50_ms=1.0,
    p99_ms=2.0,
    errors=0,
    error_rate=0.0,
    outcomes={"200": 10},
    quantiles_ms={},
)


def consolidation(ratio: float, p99: float, lost: int = 0) -> ProfilesClaimFigures:
    return ProfilesClaimFigures(
        rows={"composer -> profiles": ROW},
        throughput_ratio=ratio,
        p99_change=p99,
        p50_change=-0.5,
        lost_writes={"composer -> profiles": lost},
        settings={},
    )


def async_path(p50: float, *, sync_audit: bool = True) -> OrdersClaimFigures:
    return OrdersClaimFigures(
        rows={c: {"async": ROW, "sync": ROW} for c in CONDITIONS},
        p50_change=dict.fromkeys(CONDITIONS, p50),
        p99_change=dict.fromkeys(CONDITIONS, p50),
        settled_ms={},
        audits={"async": True, "sync": sync_audit},
        settings={},
    )


def events(per_s: float, *, audit_ok: bool = True) -> EventsFigures:
    fields: dict[str, Any] = {
        "status": "OK" if audit_ok else "FAILED",
        "audit_ok": audit_ok,
        "config": {},
        "relay": False,
        "scope": "",
        "publish_rate_target": None,
        "publish_rate_achieved": 0.0,
        "envelopes_published": 1,
        "unique_commands": 1,
        "events": 1,
        "events_expected_by_model": 1,
        "events_per_s": per_s,
        "events_per_s_basis": "",
        "events_per_s_wall": per_s,
        "commands_per_s": 0.0,
        "commit_span_s": 1.0,
        "wall_s": 1.0,
        "lag_ms": {},
        "batches": {},
        "ratio_vs_eventsourcing": 1.5,
    }
    return msgspec.convert(fields, EventsFigures)


@pytest.mark.parametrize(
    ("ratio", "p99", "lost", "expected"),
    [
        (2.0, -0.65, 0, "REPRODUCED"),
        (1.9, -0.70, 0, "PARTLY"),
        (1.2, -0.10, 0, "NOT REPRODUCED"),
        (3.0, -0.90, 1, "FAILED"),
    ],
)
def test_the_consolidation_verdict_compares_both_ratios_with_the_seed_and_needs_no_lost_write(
    ratio: float, p99: float, lost: int, expected: str
) -> None:
    found = verdicts(consolidation(ratio, p99, lost), async_path(-0.95), {"e": events(13e3)})
    assert found[0].verdict == expected


def test_the_async_verdict_needs_minus_ninety_percent_and_both_audits() -> None:
    assert verdicts(consolidation(2, -1), async_path(-0.9), {})[1].verdict == "REPRODUCED"
    assert verdicts(consolidation(2, -1), async_path(-0.5), {})[1].verdict == "NOT REPRODUCED"
    failed = verdicts(consolidation(2, -1), async_path(-0.95, sync_audit=False), {})[1]
    assert (failed.verdict, failed.audit_ok) == ("FAILED", False)


def test_the_events_verdict_needs_twelve_thousand_per_s_on_every_backend_and_the_audit() -> None:
    def three(*figures: EventsFigures) -> str:
        named = {str(i): f for i, f in enumerate(figures)}
        return verdicts(consolidation(2, -1), async_path(-1), named)[2].verdict

    assert three(events(12_000), events(40_000)) == "REPRODUCED"
    assert three(events(11_999), events(40_000)) == "PARTLY"
    assert three(events(50_000, audit_ok=False)) == "FAILED"
