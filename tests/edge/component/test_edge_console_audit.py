"""The console's audit for real: edge runs the ``stockflow audit`` command (a child process)
on the stores of the real inventory and orders (SQLite files), and on logs written with raw SQL
to break an invariant; ``POST /console/audit`` is staff's, and the verdict reaches the stream."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.audit.conftest import EventLog
from tests.edge.component.test_edge_console import first
from tests.edge.conftest import Edge, bearer, client, edge_settings

from stockflow.edge.adapters.auditor import ProcessAuditor
from stockflow.edge.bootstrap import build


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, str]:
    return {
        "inventory": sqlite(tmp_path / "inventory.sqlite3"),
        "orders": sqlite(tmp_path / "orders.sqlite3"),
    }


@pytest.fixture
def edge_overrides(stores: dict[str, str]) -> dict[str, object]:
    return {
        "console_interval_seconds": 0.05,
        "audit_inventory_store_url": stores["inventory"],
        "audit_orders_store_url": stores["orders"],
    }


async def test_staff_runs_the_audit_and_every_stream_sees_the_verdict(edge: Edge) -> None:
    await edge.receive("SKU-A", 9)
    placed = await edge.place("alice", [{"sku": "SKU-A", "qty": 4}], key="audit-1")
    assert placed.status_code == 202, placed.text
    await edge.settled(placed.json()["id"])

    started = await edge.http.post("/console/audit", headers=bearer("sam", "staff"))
    assert started.status_code == 202, started.text
    assert started.json() == {"audit": "started"}

    def audited(view: dict[str, Any]) -> bool:
        return view["audit"]["last"] is not None and not view["audit"]["running"]

    view = await first(edge.service.console.updates(staff=True), audited, within=60)
    last = view["audit"]["last"]
    assert last["ok"] is True, view["audit_checks"]
    assert last["violations"] == 0
    assert last["skus"] == 1
    assert last["events"] == 2  # received, reserved
    checks = {c["invariant"]: c for c in view["audit_checks"]}
    assert all(c["checked"] for c in checks.values()), checks  # 5 too: the orders database
    public = await first(edge.service.console.updates(staff=False), audited)
    assert public["audit"]["last"] == last
    assert "audit_checks" not in public


async def test_only_staff_may_run_the_audit(edge: Edge) -> None:
    nobody = await edge.http.post("/console/audit")
    assert nobody.status_code == 401
    assert nobody.headers["content-type"] == "application/problem+json"
    customer = await edge.http.post("/console/audit", headers=bearer("alice"))
    assert customer.status_code == 403
    assert customer.headers["content-type"] == "application/problem+json"
    assert edge.service.audit.last is None
    assert not edge.service.audit.running


async def test_an_edge_without_a_store_says_it_cannot_audit() -> None:
    service = build(edge_settings())
    async with client(service.app) as http:
        refused = await http.post("/console/audit", headers=bearer("sam", "staff"))
    await service.stop()
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert "EDGE_AUDIT_INVENTORY_STORE_URL" in refused.json()["detail"]


async def test_a_broken_invariant_is_a_verdict_with_its_examples(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.received("SKU-B", 2)
    log.reserved("SKU-B", "order-1", 5)  # more than on hand: available goes negative
    log.project()
    log.conn.close()
    run = await ProcessAuditor(inventory_store_url=sqlite(log.path), orders_store_url=None).audit()
    assert run.ok is False, run
    assert run.violations >= 1
    broken = [c for c in run.staff_json()["checks"] if c["violations"]]
    assert any(e.get("sku") == "SKU-B" for c in broken for e in c["examples"]), broken
    assert run.public_json()["events"] == 2


async def test_an_audit_that_cannot_read_its_store_says_why(tmp_path: Path) -> None:
    missing = sqlite(tmp_path / "nowhere" / "inventory.sqlite3")
    run = await ProcessAuditor(inventory_store_url=missing, orders_store_url=None).audit()
    assert run.ok is None
    assert "cannot audit" in (run.error or ""), run.error


async def test_an_audit_past_its_timeout_is_stopped_and_reported(tmp_path: Path) -> None:
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)")
    auditor = ProcessAuditor(
        inventory_store_url=sqlite(tmp_path / "x.sqlite3"),
        orders_store_url=None,
        timeout=0.5,
        program=sleeper,
    )
    began = time.monotonic()
    run = await auditor.audit()
    assert time.monotonic() - began < 10
    assert run.ok is None
    assert run.error == "took longer than 0.5 s"
