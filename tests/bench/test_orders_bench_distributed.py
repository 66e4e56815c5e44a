"""``stockflow bench orders --backend distributed`` on the shared servers, with a tiny run: it
passes the audit (both phases) and leaves neither a database nor a stream behind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.bench.leftovers import bench_databases, bench_streams
from typer.testing import CliRunner

from stockflow.runtime.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_tiny_distributed_run_settles_every_order_passes_the_audit_and_cleans_up(
    postgres_url: str, nats_url: str, tmp_path: Path
) -> None:
    """The CLI runs its own event loop, so this test is synchronous."""
    databases = asyncio.run(bench_databases(postgres_url))
    streams = asyncio.run(bench_streams(nats_url))
    out = tmp_path / "bench.json"
    args = ["bench", "orders", "--backend", "distributed", "--orders", "40", "--skus", "5"]
    args += ["--json", str(out), "--database-url", postgres_url, "--nats-url", nats_url]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert (body["status"], body["config"]["backend"]) == ("OK", "distributed")
    assert (body["accepted"], body["confirmed"] + body["rejected"]) == (40, 40)
    assert body["inventory_alone"]["audit_ok"] is True
    assert body["inventory_alone"]["reserved"] + body["inventory_alone"]["rejected"] == 40
    assert asyncio.run(bench_databases(postgres_url)) == databases
    assert asyncio.run(bench_streams(nats_url)) == streams
