"""Invariant 5 on the embedded deployment: the orders database (raw SQL, next to the inventory
store) against what the inventory's event log holds and shipped per order."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.audit.conftest import NOW, EventLog, OrdersDb
from typer.testing import CliRunner, Result

from stockflow.audit import AuditReport, Check, audit_data_dir, audit_url
from stockflow.runtime.cli import app


def audit(log: EventLog, **options: Any) -> AuditReport:
    return audit_data_dir(log.path.parent, now=NOW, **options)


def order_violations(report: AuditReport) -> list[tuple[str | None, str]]:
    return [(v.order_id, v.detail) for v in report.violations if v.check is Check.ORDERS]


def run_cli(*args: str) -> Result:
    """``stockflow audit`` with a wide console, so report lines are not wrapped."""
    return CliRunner().invoke(app, ["audit", *args], env={"COLUMNS": "200"})


def stocked(log: EventLog) -> None:
    log.received("A", 100)
    log.received("B", 100)


def test_orders_that_hold_what_their_status_says_pass_and_unknown_holds_are_only_counted(
    event_log: EventLog, orders_db: OrdersDb
) -> None:
    stocked(event_log)
    orders_db.add("o-confirmed", "CONFIRMED", [("A", 2), ("B", 1), ("A", 1)])
    event_log.reserved("A", "o-confirmed", 3)
    event_log.reserved("B", "o-confirmed", 1)
    orders_db.add("o-shipped", "SHIPPED", [("A", 2), ("B", 4)])
    for sku, qty in (("A", 2), ("B", 4)):
        event_log.reserved(sku, "o-shipped", qty)
        event_log.shipped(sku, "o-shipped", qty)
    orders_db.add("o-rejected", "REJECTED", [("A", 999)])
    event_log.append(
        "ReservationRejected",
        "A",
        order_id="o-rejected",
        reason="insufficient_stock",
        lines=[{"sku": "A", "requested": 999, "available": 95}],
    )
    orders_db.add("o-cancelled", "CANCELLED", [("B", 2)])
    event_log.reserved("B", "o-cancelled", 2)
    event_log.released("B", "o-cancelled", 2)
    orders_db.add("o-pending", "PENDING", [("A", 5)], expires_at=NOW - 2)  # within the grace
    event_log.reserved("A", "o-pending", 1)  # in flight: may hold anything
    event_log.reserved("B", "bench-1", 7)  # a ReserveStock sent directly: no order row
    event_log.project()

    report = audit(event_log)

    assert report.ok, report.violations
    assert (report.orders.orders, report.orders.unknown_reservations) == (5, 1)
    assert report.orders.source == str(orders_db.path)


def test_the_cli_audits_the_orders_next_to_the_inventory_and_says_so(
    event_log: EventLog, orders_db: OrdersDb, tmp_path: Path
) -> None:
    stocked(event_log)
    orders_db.add("o1", "CONFIRMED", [("A", 2)], expires_at=time.time() - 60)
    event_log.reserved("A", "o1", 2)
    event_log.reserved("A", "direct", 1)
    event_log.project()
    out = tmp_path / "audit.json"
    result = run_cli("--data-dir", str(tmp_path), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "1 orders; reservations of unknown orders: 1" in result.output
    assert "PASSED: 8/8 checks hold" in result.output
    body = json.loads(out.read_text())
    assert body["orders"] == {
        "checked": True,
        "source": str(orders_db.path),
        "orders": 1,
        "unknown_order_reservations": 1,
        "note": None,
    }
    [orders] = [c for c in body["checks"] if c["invariant"] == 5]
    assert (orders["check"], orders["checked"], orders["violations"]) == ("orders", True, 0)


def test_every_kind_of_order_holding_the_wrong_stock_is_reported_with_the_order(
    event_log: EventLog, orders_db: OrdersDb
) -> None:
    stocked(event_log)
    orders_db.add("c-missing", "CONFIRMED", [("A", 2), ("B", 1)])
    event_log.reserved("A", "c-missing", 2)
    orders_db.add("c-qty", "CONFIRMED", [("A", 3)])
    event_log.reserved("A", "c-qty", 1)
    orders_db.add("r-held", "REJECTED", [("A", 1)])
    event_log.reserved("A", "r-held", 1)
    orders_db.add("s-not-shipped", "SHIPPED", [("A", 2)])
    event_log.reserved("A", "s-not-shipped", 2)
    orders_db.add("s-partly", "SHIPPED", [("B", 2)])
    event_log.reserved("B", "s-partly", 2)
    event_log.shipped("B", "s-partly", 1)
    orders_db.add("x-held", "CANCELLED", [("B", 2)])
    event_log.reserved("B", "x-held", 2)
    orders_db.add("x-shipped", "CANCELLED", [("B", 1)])
    event_log.reserved("B", "x-shipped", 1)
    event_log.shipped("B", "x-shipped", 1)
    event_log.project()

    report = audit(event_log)

    assert {check for check, n in report.counts.items() if n} == {Check.ORDERS}
    assert order_violations(report) == [
        ("c-missing", "CONFIRMED: holds {A: 2}, expected {A: 2, B: 1}"),
        ("c-qty", "CONFIRMED: holds {A: 1}, expected {A: 3}"),
        ("r-held", "REJECTED: holds {A: 1}, expected nothing"),
        (
            "s-not-shipped",
            "SHIPPED: holds {A: 2}, expected nothing; shipped nothing, expected {A: 2}",
        ),
        ("s-partly", "SHIPPED: holds {B: 1}, expected nothing; shipped {B: 1}, expected {B: 2}"),
        ("x-held", "CANCELLED: holds {B: 2}, expected nothing"),
        ("x-shipped", "CANCELLED: shipped {B: 1}, expected nothing"),
    ]
    first = report.violations[0]
    assert first.sku == "B"
    assert first.facts == {
        "status": "CONFIRMED",
        "lines": {"A": 2, "B": 1},
        "held": {"A": 2},
        "shipped": {},
    }


def test_an_order_pending_past_its_saga_deadline_is_reported_unless_within_the_grace(
    event_log: EventLog, orders_db: OrdersDb
) -> None:
    stocked(event_log)
    orders_db.add("p-late", "PENDING", [("A", 1)], expires_at=NOW - 60)
    orders_db.add("p-fresh", "PENDING", [("A", 1)], expires_at=NOW + 60)
    event_log.project()

    report = audit(event_log)

    assert order_violations(report) == [
        ("p-late", "PENDING 60.0 s past its saga deadline 2025-06-15T15:05:40+00:00 (grace 5 s)")
    ]
    assert report.violations[0].facts == {
        "status": "PENDING",
        "expires_at": NOW - 60,
        "overdue_s": 60.0,
    }
    assert audit(event_log, grace=90).ok


def test_unreadable_lines_deadlines_and_unknown_statuses_are_reported(
    event_log: EventLog, orders_db: OrdersDb
) -> None:
    stocked(event_log)
    orders_db.add("bad-lines", "CONFIRMED", '[{"sku": "A", "qty": 1}]')
    orders_db.add("bad-status", "LOST", [("A", 1)])
    orders_db.add("bad-deadline", "PENDING", [("A", 1)])
    orders_db.conn.execute("UPDATE orders SET expires_at = 'soon' WHERE id = 'bad-deadline'")
    event_log.project()

    assert order_violations(audit(event_log)) == [
        ("bad-deadline", "PENDING without a saga deadline (expires_at 'soon')"),
        ("bad-lines", "CONFIRMED: lines are not a list of [sku, qty] pairs"),
        ("bad-status", "unknown status 'LOST'"),
    ]


def test_a_broken_order_exits_one_and_is_shown_in_text_and_json(
    event_log: EventLog, orders_db: OrdersDb, tmp_path: Path
) -> None:
    stocked(event_log)
    orders_db.add("o7", "CANCELLED", [("A", 2)])
    event_log.reserved("A", "o7", 2)
    orders_db.add("o8", "PENDING", [("A", 2)], expires_at=time.time() - 10)
    event_log.project()
    out = tmp_path / "audit.json"
    result = run_cli("--data-dir", str(tmp_path), "--grace", "1", "--json", str(out))
    assert result.exit_code == 1, result.output
    assert "sku=A order=o7: CANCELLED: holds {A: 2}, expected nothing" in result.output
    assert "order=o8: PENDING 10." in result.output
    assert "(grace 1 s)" in result.output
    assert "FAILED: 7/8 checks hold" in result.output
    [orders] = [c for c in json.loads(out.read_text())["checks"] if c["check"] == "orders"]
    assert orders["violations"] == 2
    assert orders["examples"][0] == {
        "sku": "A",
        "order_id": "o7",
        "detail": "CANCELLED: holds {A: 2}, expected nothing",
        "status": "CANCELLED",
        "lines": {"A": 2},
        "held": {"A": 2},
        "shipped": {},
    }


def test_without_an_orders_database_invariant_5_is_not_checked_and_says_so(
    event_log: EventLog, tmp_path: Path
) -> None:
    stocked(event_log)
    event_log.reserved("A", "bench-1", 1)
    event_log.project()
    out = tmp_path / "audit.json"
    result = run_cli("--data-dir", str(tmp_path), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "invariant 5 not checked: no orders database" in result.output
    assert "PASSED: 7/8 checks hold, 1 not checked" in result.output
    body = json.loads(out.read_text())
    assert body["ok"] is True
    assert body["orders"]["checked"] is False
    assert body["orders"]["note"] == (
        f"not checked: no orders database ({tmp_path / 'orders.sqlite3'} does not exist)"
    )
    [orders] = [c for c in body["checks"] if c["check"] == "orders"]
    assert (orders["checked"], orders["violations"]) == (False, 0)
    assert orders["note"].startswith("not checked: no orders database")


def test_an_event_store_url_alone_does_not_check_orders_but_orders_url_does(
    event_log: EventLog, orders_db: OrdersDb
) -> None:
    stocked(event_log)
    orders_db.add("o1", "REJECTED", [("A", 1)])
    event_log.reserved("A", "o1", 1)
    event_log.project()
    store = f"sqlite:///{event_log.path}"

    alone = audit_url(store, now=NOW)
    assert alone.ok
    assert alone.orders.not_checked == "no orders database (pass --orders-url)"

    both = audit_url(store, orders_url=f"sqlite:///{orders_db.path}", now=NOW)
    assert order_violations(both) == [("o1", "REJECTED: holds {A: 1}, expected nothing")]


def test_an_orders_file_without_the_orders_table_cannot_be_audited(
    event_log: EventLog, tmp_path: Path
) -> None:
    event_log.project()
    (tmp_path / "orders.sqlite3").touch()
    result = run_cli("--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "is not an orders database (no orders table)" in result.output
