"""``stockflow bench events --backend distributed`` on the shared servers, with a tiny workload:
it passes the audit and leaves neither a database nor a stream behind."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import asyncpg
import nats
import pytest
from typer.testing import CliRunner

from stockflow.runtime.cli import app

pytestmark = pytest.mark.integration

_BENCH_STREAM = re.compile(r"^bench[0-9a-f]{10}_")


async def bench_databases(postgres_url: str) -> set[str]:
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'stockflow\\_bench\\_%'"
        )
    finally:
        await conn.close()
    return {row["datname"] for row in rows}


async def bench_streams(nats_url: str) -> set[str]:
    nc = await nats.connect(nats_url)
    try:
        infos = await nc.jetstream().streams_info()
    finally:
        await nc.close()
    return {i.config.name for i in infos if i.config.name and _BENCH_STREAM.match(i.config.name)}


def test_a_tiny_distributed_run_passes_the_audit_and_cleans_up(
    postgres_url: str, nats_url: str, tmp_path: Path
) -> None:
    """The CLI runs its own event loop, so this test is synchronous."""
    databases = asyncio.run(bench_databases(postgres_url))
    streams = asyncio.run(bench_streams(nats_url))
    out = tmp_path / "bench.json"
    args = ["bench", "events", "--backend", "distributed", "--events", "400", "--skus", "10"]
    args += ["--partitions", "2", "--relay", "--json", str(out)]
    args += ["--postgres-url", postgres_url, "--nats-url", nats_url]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    body = json.loads(out.read_text())
    assert (body["status"], body["config"]["backend"]) == ("OK", "distributed")
    assert body["events"] >= body["events_expected_by_model"] >= 400
    assert body["events_per_s_relayed"] > 0
    assert body["eventsourcing"]["persistence"] == "eventsourcing.postgres"
    assert body["eventsourcing_one_per_save"]["final_stock_matches_reference"] is True
    assert asyncio.run(bench_databases(postgres_url)) == databases
    assert asyncio.run(bench_streams(nats_url)) == streams
