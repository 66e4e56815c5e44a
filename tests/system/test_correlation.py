"""The correlation audit: one order placed through edge with an ``X-Correlation-ID`` is found in
the log lines of every service it touched, in the envelope of every message it caused, and in
one trace (exported to a stand-in OTLP collector); ``stockflow trace`` tells that story.

The embedded system (JSON logs, its log file in the data dir) runs once for the module, in
the fixture's loop next to the collector, and has stopped before the checks read what it left.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from tests.otlp import Collector, serving
from tests.system.system import STOCKFLOW, System, embedded
from typer.testing import CliRunner

from stockflow.runtime.embedded import LOG_FILE
from stockflow.runtime.trace import carries
from stockflow_kit.messaging.envelope import decode_envelope

pytestmark = pytest.mark.slow

CAUSED = ("OrderPlaced", "StockReserved", "OrderConfirmed")
"""The messages one successful order causes on the bus."""
TOUCHED = ("edge", "orders", "inventory", "notifications")


def envelopes(data_dir: Path, correlation: str) -> list[dict[str, Any]]:
    """The bus messages (embedded bus, ``bus.sqlite3``) carrying *correlation*."""
    with sqlite3.connect(f"file:{data_dir / 'bus.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT topic, body FROM bus_messages ORDER BY seq").fetchall()
    found = []
    for topic, body in rows:
        envelope = decode_envelope(body)
        if envelope.correlation_id == correlation:
            found.append({"topic": topic, "type": envelope.type, "source": envelope.source})
    return found


async def place_one_order(system: System, http: httpx.AsyncClient, correlation: str) -> str:
    sku = f"TRACE-{uuid.uuid4().hex[:8]}"
    staff = system.auth("staff-trace", "staff")
    received = await http.post(
        f"{system.url()}/inventory/{sku}/receipts",
        json={"qty": 5, "reference": "trace"},
        headers={**staff, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert received.status_code == 201, received.text
    placed = await http.post(
        f"{system.url()}/orders",
        json={"lines": [{"sku": sku, "qty": 2}]},
        headers={
            **system.auth("tracy"),
            "Idempotency-Key": uuid.uuid4().hex,
            "X-Correlation-ID": correlation,
        },
    )
    assert placed.status_code == 202, placed.text
    assert placed.headers["x-correlation-id"] == correlation
    order_id: str = placed.json()["id"]
    deadline = time.monotonic() + 30
    while True:
        order = await http.get(f"{system.url()}/orders/{order_id}", headers=system.auth("tracy"))
        if order.json()["status"] != "PENDING":
            break
        assert time.monotonic() < deadline, order.text
        await asyncio.sleep(0.1)
    assert order.json()["status"] == "CONFIRMED", order.text
    deadline = time.monotonic() + 20  # the in-app notification: notifications handled it
    while (
        order_id
        not in (
            notes := await http.get(f"{system.url()}/notifications", headers=system.auth("tracy"))
        ).text
    ):
        assert time.monotonic() < deadline, notes.text
        await asyncio.sleep(0.1)
    return order_id


def trace_command(*args: str) -> subprocess.CompletedProcess[str]:
    """The program itself, as a person runs it."""
    return subprocess.run(
        [STOCKFLOW, "trace", *args], capture_output=True, text=True, timeout=60, check=False
    )


def trace_in_process(*args: str) -> Result:
    """The same command in this process (no interpreter start-up)."""
    from stockflow.runtime.cli import app

    return CliRunner().invoke(app, ["trace", *args])


@dataclass
class Audited:
    system: System
    collector: Collector
    correlation: str
    order_id: str


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """One order placed with a correlation id of its own, on a system that has since stopped
    (so every log line and span is written)."""

    async def scenario() -> Audited:
        collector = Collector()
        correlation = f"audit-{uuid.uuid4().hex}"
        async with serving(collector) as port, httpx.AsyncClient(timeout=30) as http:
            system = embedded(tmp_path_factory.mktemp("correlation"))
            system.env = {
                "STOCKFLOW_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            }
            try:
                await system.start()
                order_id = await place_one_order(system, http, correlation)
            finally:
                assert await system.stop() == 0, system.tail()  # flushes the spans
        return Audited(system, collector, correlation, order_id)

    return asyncio.run(scenario())


def test_every_service_it_touched_logged_the_correlation_id(audited: Audited) -> None:
    system = audited.system
    for source in (system.log, system.data_dir / LOG_FILE):  # stderr, and the JSON log file
        lines = [json.loads(x) for x in source.read_text().splitlines() if x.startswith("{")]
        mine = [line for line in lines if carries(line, audited.correlation)]
        assert set(TOUCHED) <= {line.get("service") for line in mine}, source
        others = [line for line in lines if not carries(line, audited.correlation)]
        assert others, "every line carries it: the check could not tell"


def test_every_message_it_caused_carries_the_correlation_id(audited: Audited) -> None:
    caused = envelopes(audited.system.data_dir, audited.correlation)
    assert set(CAUSED) <= {m["type"] for m in caused}, caused
    assert {m["source"] for m in caused} == {"orders", "inventory"}, caused


def test_the_notifications_it_caused_carry_the_correlation_id(audited: Audited) -> None:
    database = audited.system.data_dir / "notifications.sqlite3"
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT type, correlation_id FROM notifications WHERE order_id = ?",
            (audited.order_id,),
        ).fetchall()
    assert rows, "no notification of the order"
    assert {correlation for _, correlation in rows} == {audited.correlation}, rows


def _request_trace(audited: Audited) -> tuple[str, set[str]]:
    spans = audited.collector.received_spans
    roots = [s for s in spans if s.name == "POST /orders" and not s.parent_span_id]
    assert len(roots) == 1, sorted({s.name for s in spans})
    trace_id = roots[0].trace_id
    return trace_id, {s.name for s in spans if s.trace_id == trace_id}


def test_one_trace_covers_edge_orders_the_bus_inventory_and_notifications(
    audited: Audited,
) -> None:
    _, names = _request_trace(audited)
    # edge's server span and its call to orders, orders' server span, OrderPlaced published
    # (the outbox relay keeps the request's context), inventory and notifications consuming it.
    hops = {"POST /orders", "orders.events publish", "inventory-orders process"}
    assert hops | {"notifications-orders process"} <= names, names


def test_one_trace_covers_the_whole_saga(audited: Audited) -> None:
    """The hops after StockReserved too: inventory's event log keeps each event's trace
    context, so the relay publishes StockReserved in the request's trace, and orders consuming
    it and publishing OrderConfirmed (its outbox keeps the context) continue it."""
    trace_id, names = _request_trace(audited)
    after = {"inventory.events publish", "orders-inventory process"}
    assert after <= names, names
    publishes = [
        s
        for s in audited.collector.received_spans
        if s.trace_id == trace_id and s.name == "orders.events publish"
    ]
    assert len(publishes) >= 2, names  # OrderPlaced, and OrderConfirmed after StockReserved


def test_stockflow_trace_tells_the_story_in_time_order(audited: Audited) -> None:
    data_dir = str(audited.system.data_dir)
    told = trace_command(audited.correlation, "--data-dir", data_dir)
    assert told.returncode == 0, told.stderr
    text = told.stdout
    assert audited.correlation in text.splitlines()[0]
    for name in (*TOUCHED, *CAUSED):
        assert name in text, (name, text)
    positions = [text.index(f"=> {kind}") for kind in CAUSED]
    assert positions == sorted(positions), text  # placed, reserved, confirmed: in that order
    offsets = [
        float(line.split("ms")[0].strip(" +")) for line in text.splitlines() if "+" in line[:4]
    ]
    assert offsets == sorted(offsets), text
    assert offsets[-1] > 0, text

    as_json = trace_in_process(audited.correlation, "--data-dir", data_dir, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    story = json.loads(as_json.stdout)
    assert story["correlation_id"] == audited.correlation
    assert set(TOUCHED) <= set(story["services"])
    assert [m for m in story["messages"] if m in CAUSED] == list(CAUSED)
    subjects = {s["detail"].get("subject") for s in story["steps"] if s["kind"] == "message"}
    assert audited.order_id in subjects
    assert story["duration_ms"] > 0
    assert story["trace_ids"], story  # the log lines name their traces


def test_stockflow_trace_says_what_to_do_when_the_id_or_the_data_dir_is_not_found(
    audited: Audited, tmp_path: Path
) -> None:
    unknown = trace_in_process("no-such-id", "--data-dir", str(audited.system.data_dir))
    assert unknown.exit_code == 1
    assert "no-such-id" in unknown.stderr
    assert "X-Correlation-ID" in unknown.stderr
    missing = trace_in_process("x", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert "--data-dir" in missing.stderr
    empty = trace_in_process("x", "--data-dir", str(tmp_path))
    assert empty.exit_code == 2
    assert "stockflow up" in empty.stderr
    assert "Traceback" not in unknown.output + missing.output + empty.output
