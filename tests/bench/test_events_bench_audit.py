"""A run whose audit fails is FAILED, counts as zero and exits non-zero: the real auditor,
fed a store broken between the run and the audit."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from stockflow.bench.backends import BenchBackend
from stockflow.bench.events import EventsBenchConfig, run_events_bench

pytestmark = pytest.mark.slow  # each runs `stockflow serve inventory` as a subprocess


async def lose_the_first_receipt(backend: BenchBackend) -> None:
    """Delete the log's first event (a StockReceived): later reservations become phantoms."""
    path = backend.event_store_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM events WHERE position = (SELECT min(position) FROM events)")


def test_a_run_whose_audit_fails_is_reported_failed_with_zero_events_per_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    config = EventsBenchConfig(
        events=600,
        skus=5,
        partitions=2,
        compare_eventsourcing=False,
        json_file=out,
        before_audit=lose_the_first_receipt,
    )
    said: list[str] = []

    assert run_events_bench(config, say=said.append) == 1

    body = json.loads(out.read_text())
    assert (body["status"], body["audit_ok"]) == ("FAILED (audit)", False)
    assert body["events"] > 0
    assert body["events_per_s"] == body["events_per_s_wall"] == body["commands_per_s"] == 0.0
    assert "before_audit" not in body["config"]
    assert "FAILED: run counts as zero" in capsys.readouterr().out
    assert any("FAIL" in line for line in said)  # the auditor's own report was shown


def test_a_traced_run_stores_and_relays_a_trace_context_per_event(tmp_path: Path) -> None:
    """``--traced``: what it measures is there (each event keeps its command's trace context,
    the relay publishes every one), and the audit passes."""
    seen: dict[str, object] = {}

    async def look(backend: BenchBackend) -> None:
        events = backend.event_store_url.removeprefix("sqlite:///")
        bus = backend.bus_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(events)) as conn:
            seen["untraced"] = conn.execute(
                "SELECT count(*) FROM events WHERE traceparent IS NULL"
            ).fetchone()[0]
            seen["events"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        with contextlib.closing(sqlite3.connect(bus)) as conn:
            seen["relayed"] = conn.execute(
                "SELECT count(*) FROM bus_messages WHERE topic = 'inventory.events'"
                " AND CAST(headers AS TEXT) LIKE '%traceparent%'"
            ).fetchone()[0]

    config = EventsBenchConfig(
        events=400,
        skus=5,
        partitions=2,
        compare_eventsourcing=False,
        relay=True,
        traced=True,
        json_file=tmp_path / "bench.json",
        before_audit=look,
    )
    assert run_events_bench(config, say=lambda _line: None) == 0
    assert seen["untraced"] == 0
    assert seen["relayed"] == seen["events"]
    assert json.loads((tmp_path / "bench.json").read_text())["config"]["traced"] is True
