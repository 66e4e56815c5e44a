"""``stockflow bench claims`` end to end at its smallest: all three experiments run, every
audit passes, and the table, the JSON, the report and the plots are written. No timing is
asserted (the verdicts may be anything but FAILED).

Marked ``claims`` (and ``slow``, ``integration``: claim 3 runs on PostgreSQL + JetStream too):
``make test`` leaves it out, ``make bench-claims-smoke`` runs it (``.ci/run`` after ``make
chaos``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockflow.bench.claims import SEED
from stockflow.runtime.cli import app

pytestmark = [pytest.mark.claims, pytest.mark.slow, pytest.mark.integration]

PNG = b"\x89PNG\r\n\x1a\n"
VERDICTS = {"REPRODUCED", "PARTLY", "NOT REPRODUCED"}


@pytest.mark.timeout(600)
def test_a_tiny_claims_run_measures_all_three_passes_every_audit_and_writes_its_report(
    postgres_url: str, nats_url: str, tmp_path: Path
) -> None:
    plots, out = tmp_path / "plots", tmp_path / "claims.json"
    args = ["bench", "claims", "--quick", "--duration", "1", "--events", "1000"]
    args += ["--concurrency", "4", "--order-senders", "2", "--outage", "0.3"]
    args += ["--plots", str(plots), "--json", str(out)]
    args += ["--postgres-url", postgres_url, "--nats-url", nats_url]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert body["status"] == "OK"
    assert [v["claim"][0] for v in body["verdicts"]] == ["1", "2", "3"]
    assert all(v["verdict"] in VERDICTS and v["audit_ok"] for v in body["verdicts"])
    one = body["consolidation"]
    assert set(one["rows"]) == {
        "edge -> profiles",
        "composer -> profiles",
        "composer -> 4 fragments",
    }
    assert all(row["requests"] > 0 and "latencies_ms" not in row for row in one["rows"].values())
    assert one["lost_writes"] == dict.fromkeys(one["rows"], 0)
    two = body["async_path"]
    assert set(two["rows"]) == {"normal", "slow", "outage"}
    assert all(set(rows) == {"async", "sync"} for rows in two["rows"].values())
    assert two["audits"] == {"async": True, "sync": True}
    events = body["events"]
    assert set(events) == {"embedded", "distributed"}
    assert all(e["audit_ok"] and e["ratio_vs_eventsourcing"] > 0 for e in events.values())
    verdict_three = body["verdicts"][2]["verdict"]
    reached = all(e["events_per_s"] >= SEED["events_per_s"] for e in events.values())
    assert (verdict_three == "REPRODUCED") == reached
    images = sorted(p.name for p in plots.glob("*.png"))
    assert images == ["claim1-consolidation.png", "claim2-async.png", "claim3-events.png"]
    assert all((plots / name).read_bytes().startswith(PNG) for name in images)
    report = (plots / "claims.md").read_text()
    assert all(f"]({name})" in report for name in images)
    assert "| 1 consolidation |" in result.output  # the table on stdout
    # Claim 3 is `bench events` (measure_events), whose cleanup of its database and streams
    # tests/bench/test_events_bench_distributed.py checks; here other runs share the servers.
