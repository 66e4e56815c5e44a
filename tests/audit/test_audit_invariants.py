"""Each invariant of API.md (1-4) broken on purpose, found by the auditor, with its exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stockflow.audit import AuditReport, Check, audit_data_dir
from stockflow.runtime.cli import app


def audit(log: Any) -> AuditReport:
    return audit_data_dir(Path(log.path).parent)


def broken(report: AuditReport) -> set[Check]:
    return {check for check, count in report.counts.items() if count}


def healthy_log(log: Any) -> None:
    log.received("A", 10)
    log.received("B", 5)
    log.reserved("A", "o1", 3)
    log.reserved("B", "o1", 2)
    log.append("StockAdjusted", "A", delta=-2, reason="damaged")
    log.shipped("A", "o1", 3)
    log.released("B", "o1", 2)
    log.reserved("B", "o1", 1)  # reserving again after the release is a new hold, not a double
    log.append(
        "ReservationRejected",
        "A",
        order_id="o2",
        reason="insufficient_stock",
        lines=[{"sku": "A", "requested": 99, "available": 5}],
    )
    log.append("LowStockDetected", "A", available=5, threshold=10)


def test_a_consistent_log_passes_every_check_and_exits_zero(event_log: Any) -> None:
    healthy_log(event_log)
    event_log.project()
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(event_log.path.parent)])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    assert "2 SKUs, 10 events" in result.output


def test_served_stock_that_differs_from_the_fold_is_reported_with_the_sku(event_log: Any) -> None:
    healthy_log(event_log)
    event_log.project(B=(5, 0, 5))
    report = audit(event_log)
    assert broken(report) == {Check.PROJECTION}
    [violation] = report.violations
    assert violation.sku == "B"
    assert "reserved served 0 != folded 1" in violation.detail
    assert "version served 5 != folded 4" in violation.detail


def test_a_stream_without_a_served_row_and_a_row_without_events_are_reported(
    event_log: Any,
) -> None:
    event_log.received("A", 4)
    event_log.conn.execute("INSERT INTO stock VALUES ('GHOST', 3, 0, 1)")
    report = audit(event_log)
    assert Check.PROJECTION in broken(report)
    assert {v.sku for v in report.violations if v.check is Check.PROJECTION} == {"A", "GHOST"}


def test_negative_availability_after_any_event_is_reported_even_if_repaired_later(
    event_log: Any,
) -> None:
    event_log.received("A", 2)
    event_log.reserved("A", "o1", 5)
    event_log.received("A", 10)
    event_log.project()
    report = audit(event_log)
    assert broken(report) == {Check.NON_NEGATIVE}
    [violation] = report.violations
    assert "after StockReserved at position 2" in violation.detail
    assert "available=-3" in violation.detail


def test_on_hand_that_does_not_conserve_the_movements_is_reported(event_log: Any) -> None:
    event_log.received("A", 10)
    event_log.shipped("A", "o1", 0)
    event_log.project(A=(7, 0, 2))
    report = audit(event_log)
    assert Check.CONSERVATION in broken(report)
    [violation] = [v for v in report.violations if v.check is Check.CONSERVATION]
    assert "received 10 + adjustments 0 - shipped 0 = 10, served on_hand 7" in violation.detail


def test_a_duplicated_event_id_is_reported(event_log: Any) -> None:
    event_id = event_log.received("A", 1)
    event_log.append("StockReceived", "A", event_id=event_id, qty=1)
    event_log.project()
    report = audit(event_log)
    assert broken(report) == {Check.EVENT_IDS}
    assert event_id.hex() in report.violations[0].detail


def test_sequence_gaps_and_repeats_are_reported(event_log: Any) -> None:
    event_log.received("A", 1)
    event_log.append("StockReceived", "A", sequence=3, qty=1)
    event_log.append("StockReceived", "A", sequence=3, qty=1)
    event_log.project(A=(3, 0, 3))
    report = audit(event_log)
    assert broken(report) == {Check.SEQUENCES}
    assert report.counts[Check.SEQUENCES] == 2
    assert "expected sequence 2" in report.violations[0].detail


def test_an_order_line_reserved_twice_while_held_is_reported(event_log: Any) -> None:
    event_log.received("A", 10)
    event_log.reserved("A", "o1", 2)
    event_log.reserved("A", "o1", 2)
    event_log.project()
    report = audit(event_log)
    assert broken(report) == {Check.ORDER_LINES}
    assert report.violations[0].order_id == "o1"
    assert "reserved 2 again while 2 is held" in report.violations[0].detail


def test_releasing_or_shipping_without_or_beyond_a_reservation_is_reported(
    event_log: Any,
) -> None:
    event_log.received("A", 10)
    event_log.reserved("A", "o1", 2)
    event_log.shipped("A", "o1", 2)
    event_log.shipped("A", "o1", 2)  # shipped twice
    event_log.reserved("A", "o2", 1)
    event_log.released("A", "o2", 3)  # more than reserved
    event_log.released("A", "o3", 1)  # never reserved
    event_log.project()
    report = audit(event_log)
    assert Check.ORDER_LINES in broken(report)
    details = [(v.order_id, v.detail) for v in report.violations if v.check is Check.ORDER_LINES]
    assert details == [
        ("o1", "position 4, sequence 4: shipped 2 without a reservation held"),
        ("o2", "position 6, sequence 6: released 3 but only 1 was reserved"),
        ("o3", "position 7, sequence 7: released 1 without a reservation held"),
    ]


def test_unknown_unreadable_or_misfiled_events_are_reported(event_log: Any) -> None:
    event_log.received("A", 1)
    event_log.append("StockTeleported", "A", qty=1)
    event_log.append("StockReceived", "A", raw=b'{"sku": "A", "qty": -4}')
    event_log.append("StockReceived", "A", raw=b'{"sku": "B", "qty": 1}')
    event_log.conn.execute("INSERT INTO stock VALUES ('A', 2, 0, 4)")
    report = audit(event_log)
    assert broken(report) == {Check.DECODING}
    details = " | ".join(v.detail for v in report.violations)
    assert "unknown type 'StockTeleported'" in details
    assert "StockReceived unreadable" in details
    assert "names SKU 'B'" in details


def test_a_broken_log_exits_one_and_names_what_broke_in_text_and_json(
    event_log: Any, tmp_path: Path
) -> None:
    event_log.received("A", 1)
    event_log.reserved("A", "o9", 1)
    event_log.reserved("A", "o9", 1)
    event_log.project()
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(
        app, ["audit", "--event-store-url", f"sqlite:///{event_log.path}", "--json", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output
    assert "sku=A order=o9" in result.output
    body = json.loads(out.read_text())
    assert body["ok"] is False
    lines = next(c for c in body["checks"] if c["check"] == "order_lines")
    assert lines["invariant"] == 4
    assert lines["examples"][0]["order_id"] == "o9"


def test_a_missing_data_dir_exits_two_and_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "--data-dir" in result.output


def test_a_file_that_is_not_an_event_store_exits_two(tmp_path: Path) -> None:
    (tmp_path / "inventory.sqlite3").write_bytes(b"not a database at all" * 100)
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot audit" in result.output


def test_a_data_dir_without_the_inventory_file_exits_two(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "inventory.sqlite3 does not exist" in result.output.replace("\n", "")
