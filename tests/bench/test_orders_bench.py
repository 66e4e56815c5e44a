"""``stockflow bench orders``: a tiny embedded run end to end, and how its figures are made.

No test asserts a speed: only that the run completes, passes the audit and reports what it
says it reports.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockflow.bench.order_mix import generate_order_mix
from stockflow.bench.orders_figures import OrdersFigures, compute_orders_figures
from stockflow.bench.orders_http import Placements
from stockflow.bench.reservations import InventoryAlone, reserve_commands
from stockflow.bench.settlements import Settlement
from stockflow.runtime.cli import app


def test_a_tiny_embedded_run_settles_every_order_passes_the_audit_and_writes_json(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "orders", "--orders", "40", "--skus", "5", "--concurrency", "8"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])

    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert (body["status"], body["audit_ok"], body["config"]["backend"]) == ("OK", True, "embedded")
    assert (body["orders"], body["accepted"], body["failed"]) == (40, 40, 0)
    assert body["confirmed"] + body["rejected"] == 40
    assert body["conflicting_settlements"] == 0
    assert body["settled_per_s"] > 0
    assert body["accepted_per_s"] > 0
    latency = body["latency_ms"]
    assert latency["max"] >= latency["p99"] >= latency["p95"] >= latency["p50"] > 0
    assert body["accept_ms"]["p50"] > 0
    assert body["saga_ms"]["p50"] > 0
    assert set(body["cpu_ms_per_order"]) == {"orders", "inventory", "bench"}
    alone = body["inventory_alone"]
    assert (alone["audit_ok"], alone["orders"]) == (True, 40)
    assert alone["reserved"] + alone["rejected"] == 40
    assert alone["reservations_per_s"] > 0
    assert body["saga_cost"] > 0
    assert "orders/s settled end to end" in result.output
    assert "audit" in result.output


def test_an_unknown_backend_exits_two() -> None:
    result = CliRunner().invoke(app, ["bench", "orders", "--backend", "kafka"])
    assert result.exit_code == 2


def test_the_order_mix_is_the_same_for_the_same_seed_and_names_each_sku_once_per_order() -> None:
    first = generate_order_mix(orders=500, skus=20, stock_factor=1.2, seed=7)
    again = generate_order_mix(orders=500, skus=20, stock_factor=1.2, seed=7)
    other = generate_order_mix(orders=500, skus=20, stock_factor=1.2, seed=8)

    assert first == again
    assert first.orders != other.orders
    for lines in first.orders:
        skus = [sku for sku, _ in lines]
        assert len(skus) == len(set(skus)) >= 1
        assert all(1 <= qty <= 9 for _, qty in lines)


def test_stock_is_the_factor_times_the_expected_demand_so_a_low_factor_runs_some_skus_out() -> None:
    def short_skus(factor: float) -> int:
        mix = generate_order_mix(orders=2000, skus=50, stock_factor=factor, seed=42)
        demand = Counter[str]()
        for lines in mix.orders:
            demand.update(dict(lines))
        return sum(1 for sku, stock in mix.stock.items() if demand[sku] > stock)

    mix = generate_order_mix(orders=2000, skus=50, stock_factor=1.2, seed=42)
    assert sum(mix.expected_demand.values()) == pytest.approx(2000 * 4)
    assert all(mix.stock[sku] >= 1.2 * d for sku, d in mix.expected_demand.items())
    assert short_skus(1.2) > 0
    assert short_skus(10) == 0


def test_the_inventory_alone_gets_one_reserve_command_per_order_with_its_lines() -> None:
    mix = generate_order_mix(orders=3, skus=4, stock_factor=1, seed=1)
    commands = reserve_commands(mix, "r1")

    assert [c.type for c in commands] == ["ReserveStock"] * 3
    assert [c.subject for c in commands] == ["bench-r1-0", "bench-r1-1", "bench-r1-2"]
    assert len({c.id for c in commands}) == 3
    lines = [tuple((line["sku"], line["qty"]) for line in c.data["lines"]) for c in commands]
    assert lines == mix.orders


def _placements() -> Placements:
    return Placements(
        sent_at={0: 100.0, 1: 100.5},
        accepted_at={0: 100.1, 1: 101.0},
        order_ids={0: "o-0", 1: "o-1"},
    )


def _alone(*, audit_ok: bool = True, rate: float | None = None) -> InventoryAlone:
    return InventoryAlone(
        audit_ok=audit_ok,
        orders=2,
        reserved=1,
        rejected=1,
        publish_rate_target=rate,
        reservations_per_s=40.0,
        span_s=0.05,
        latency_ms={"p50": 1.0, "p99": 2.0, "max": 2.0},
    )


def _figures(*, audit_ok: bool = True, alone: InventoryAlone | None = None) -> OrdersFigures:
    return compute_orders_figures(
        config={"backend": "embedded"},
        placements=_placements(),
        settled={
            "o-0": Settlement("CONFIRMED", 100.4),
            "o-1": Settlement("REJECTED", 102.0, "insufficient_stock"),
        },
        placed_at={"o-0": 100.05, "o-1": 100.9},
        conflicting=0,
        units=(4, 5),
        audit_ok=audit_ok,
        inventory_alone=alone,
        cpu_s={"orders": 0.01},
    )


def test_latency_runs_from_the_client_send_to_the_settlement_and_rates_over_their_spans() -> None:
    figures = _figures(alone=_alone())

    assert figures.latency_ms == {"p50": 400.0, "p95": 1500.0, "p99": 1500.0, "max": 1500.0}
    assert figures.accept_ms["max"] == 500.0
    assert figures.saga_ms == {"p50": 350.0, "p99": 1100.0, "max": 1100.0}
    assert (figures.accepted_per_s, figures.settled_per_s) == (2.0, 1.0)
    assert (figures.confirmed, figures.rejected) == (1, 1)
    assert figures.rejected_by_reason == {"insufficient_stock": 1}
    assert figures.saga_cost == 40.0
    assert figures.cpu_ms_per_order == {"orders": 5.0}


def test_a_run_whose_audit_failed_in_either_phase_counts_as_zero() -> None:
    for figures in (_figures(audit_ok=False), _figures(alone=_alone(audit_ok=False))):
        assert (figures.status, figures.audit_ok) == ("FAILED (audit)", False)
        assert figures.accepted_per_s == figures.settled_per_s == 0.0
        assert figures.saga_cost is None


def test_a_paced_inventory_phase_gives_no_rate_ratio() -> None:
    assert _figures(alone=_alone(rate=100.0)).saga_cost is None
