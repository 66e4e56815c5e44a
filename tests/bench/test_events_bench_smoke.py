"""``stockflow bench events`` end to end on the embedded backend, with a tiny workload."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stockflow.bench.figures import compute_figures, percentile
from stockflow.bench.workload import generate_workload
from stockflow.runtime.cli import app


def test_a_tiny_embedded_run_processes_everything_passes_the_audit_and_writes_json(
    tmp_path: Path,
) -> None:
    """On a preloaded log, with the ceiling, both peers and the plot."""
    out, plots = tmp_path / "bench.json", tmp_path / "plots"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "events",
            "--events",
            "600",
            "--skus",
            "20",
            "--partitions",
            "2",
            "--json",
            str(out),
            "--preload",
            "3000",
            "--ceiling",
            "--plots",
            str(plots),
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert body["status"] == "OK"
    assert body["audit_ok"] is True
    # The run's own events only, not the preloaded history.
    assert 3000 > body["events"] >= body["events_expected_by_model"] >= 600
    assert body["events_per_s"] > 0
    assert body["lag_ms"]["p99"] >= body["lag_ms"]["p50"] >= 0
    assert body["eventsourcing"]["final_stock_matches_reference"] is True
    assert body["ratio_vs_eventsourcing"] > 0
    one = body["eventsourcing_one_per_save"]
    assert (one["save_batch"], one["final_stock_matches_reference"]) == (1, True)
    assert one["events_per_s"] > 0
    assert (body["relay"], body["publish_rate_target"]) == (False, None)
    assert "relaying events to the bus is excluded" in body["scope"]
    assert body["events_per_s_relayed"] is None
    assert "relay events to the bus" in result.output
    assert "no (excluded from the figures)" in result.output
    assert body["config"]["preload"] == 3000 == body["preload"]["events"]
    assert body["preload"]["processed"] == 3000  # one command per preloaded event
    assert body["growth"]["preloaded_events"] == 3000
    tenths = body["growth"]["tenths"]
    assert [t["index"] for t in tenths] == list(range(1, 11))
    assert sum(t["events"] for t in tenths) == body["events"]
    assert all(t["batches"] >= 1 and t["seconds"] >= 0 for t in tenths)
    assert "events/s first / last tenth" in result.output
    assert (plots / "events-growth-embedded.png").read_bytes().startswith(b"\x89PNG")
    ceiling = body["ceiling"]
    assert (ceiling["events"], ceiling["capped_at_seconds"]) == (body["events"], None)
    assert ceiling["commands"] == body["unique_commands"]
    assert body["fraction_of_ceiling"] > 0
    conventional = body["conventional"]
    assert conventional["audit_violations"] == []
    assert conventional["final_stock_matches_reference"] is True
    assert body["ratio_vs_conventional"] > 0


def test_a_relayed_paced_run_times_the_relay_and_keeps_the_rate(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "events", "--events", "600", "--skus", "20", "--partitions", "2"]
    args += ["--relay", "--rate", "2000", "--no-compare-eventsourcing", "--json", str(out)]
    args += ["--no-compare-conventional"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert (body["status"], body["relay"], body["publish_rate_target"]) == ("OK", True, 2000.0)
    assert body["config"]["relay"] is True
    assert "INVENTORY_PUBLISH_EVENTS=true" in body["scope"]
    assert body["relay_done_s"] >= body["wall_s"] > 0
    assert body["events_per_s_relayed"] > 0
    assert body["publish_rate_achieved"] <= 2000 * 1.1  # the bucket allows one batch ahead
    assert (body["eventsourcing"], body["conventional"]) == (None, None)
    assert (body["preload"], body["ceiling"]) == (None, None)
    assert body["growth"]["preloaded_events"] == 0


def test_a_run_whose_audit_failed_counts_as_zero() -> None:
    workload = generate_workload(events=200, skus=5, seed=1)
    figures = compute_figures(
        config={"backend": "embedded"},
        workload=workload,
        published={e.id: 100.0 for e in workload.envelopes},
        first_publish=100.0,
        done_at=101.0,
        event_times=[(100.5, workload.envelopes[0].id), (100.9, None)],
        metrics={},
        audit_ok=False,
    )
    assert figures.status == "FAILED (audit)"
    assert figures.events_per_s == figures.events_per_s_wall == figures.commands_per_s == 0.0
    assert figures.lag_ms["p50"] == 500.0


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([], 50)) == (50.0, 99.0, 0.0)


def test_an_unknown_backend_exits_two() -> None:
    result = CliRunner().invoke(app, ["bench", "events", "--backend", "kafka"])
    assert result.exit_code == 2
