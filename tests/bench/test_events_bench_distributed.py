"""``stockflow bench events --backend distributed`` on the shared servers, with a tiny workload:
it passes the audit and leaves neither a database nor a stream behind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.bench.leftovers import bench_databases, bench_streams
from typer.testing import CliRunner

from stockflow.runtime.cli import app

pytestmark = pytest.mark.integration


def test_a_tiny_distributed_run_passes_the_audit_and_cleans_up(
    postgres_url: str, nats_url: str, tmp_path: Path
) -> None:
    """The CLI runs its own event loop, so this test is synchronous."""
    databases = asyncio.run(bench_databases(postgres_url))
    streams = asyncio.run(bench_streams(nats_url))
    out = tmp_path / "bench.json"
    args = ["bench", "events", "--backend", "distributed", "--events", "400", "--skus", "10"]
    args += ["--partitions", "2", "--relay", "--json", str(out), "--preload", "2000", "--ceiling"]
    args += ["--postgres-url", postgres_url, "--nats-url", nats_url]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert (body["status"], body["config"]["backend"]) == ("OK", "distributed")
    assert body["events"] >= body["events_expected_by_model"] >= 400
    assert body["events_per_s_relayed"] > 0
    assert body["eventsourcing"]["persistence"] == "eventsourcing.postgres"
    assert body["eventsourcing_one_per_save"]["final_stock_matches_reference"] is True
    assert 2000 > body["events"] >= 400  # the preloaded history left out
    assert body["ceiling"]["events"] == body["events"]
    assert body["conventional"]["audit_violations"] == []
    assert body["conventional"]["final_stock_matches_reference"] is True
    # Nothing of this run is left; other runs on the shared servers may have ended meanwhile.
    assert asyncio.run(bench_databases(postgres_url)) <= databases
    assert asyncio.run(bench_streams(nats_url)) <= streams
