"""What the auditor found: violations per check, a summary, and their rendering (rich or JSON)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.table import Table

__all__ = [
    "INVARIANT_OF",
    "MAX_EXAMPLES",
    "AuditReport",
    "Check",
    "OrdersCoverage",
    "Violation",
    "render_report",
]

MAX_EXAMPLES: Final = 50
"""Violations kept (and printed) per check; the rest are only counted."""


class Check(enum.Enum):
    """One check of API.md's invariants; the value is how the report names it."""

    PROJECTION = "served stock equals the fold"
    NON_NEGATIVE = "on_hand, reserved, available >= 0 after every event"
    CONSERVATION = "received + adjustments - shipped = on_hand"
    EVENT_IDS = "every event id is unique"
    SEQUENCES = "per stream, sequences 1..n without gaps"
    ORDER_LINES = "no order line reserved, released or shipped twice"
    DECODING = "every event is a known, readable contract event"
    ORDERS = "every order holds what its status says; none PENDING past the timeout"


INVARIANT_OF: Final = {
    Check.PROJECTION: 1,
    Check.NON_NEGATIVE: 2,
    Check.CONSERVATION: 3,
    Check.EVENT_IDS: 4,
    Check.SEQUENCES: 4,
    Check.ORDER_LINES: 4,
    Check.DECODING: 4,
    Check.ORDERS: 5,
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: which check, what differs, and where (SKU, order).

    ``facts`` are the same findings as values for the JSON report (e.g. an order's ``status``,
    its ``lines`` and what it ``held`` and ``shipped``, per SKU).
    """

    check: Check
    detail: str
    sku: str | None = None
    order_id: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class OrdersCoverage:
    """What invariant 5 read: the orders database, or why it was not checked.

    ``unknown_reservations``: open reservations (order lines held in the inventory) of order
    ids the orders database does not know; not violations (the inventory also takes
    ReserveStock commands directly), but worth seeing.
    """

    source: str | None = None
    orders: int = 0
    unknown_reservations: int = 0
    not_checked: str | None = None

    @property
    def checked(self) -> bool:
        return self.not_checked is None


@dataclass(slots=True)
class AuditReport:
    """The outcome of one audit. ``ok`` only when no check found anything."""

    source: str
    skus: int
    events: int
    open_lines: int
    seconds: float
    counts: dict[Check, int]
    examples: dict[Check, list[Violation]] = field(default_factory=dict)
    orders: OrdersCoverage = field(
        default_factory=lambda: OrdersCoverage(not_checked="no orders database")
    )

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    @property
    def violations(self) -> list[Violation]:
        return [v for check in Check for v in self.examples.get(check, [])]

    def not_checked(self, check: Check) -> str | None:
        """Why *check* did not run (``"not checked: …"``), or None when it did."""
        if check is Check.ORDERS and not self.orders.checked:
            return f"not checked: {self.orders.not_checked}"
        return None

    def to_json(self) -> dict[str, Any]:
        orders = self.orders
        return {
            "ok": self.ok,
            "source": self.source,
            "skus": self.skus,
            "events": self.events,
            "open_order_lines": self.open_lines,
            "orders": {
                "checked": orders.checked,
                "source": orders.source,
                "orders": orders.orders,
                "unknown_order_reservations": orders.unknown_reservations,
                "note": self.not_checked(Check.ORDERS),
            },
            "seconds": round(self.seconds, 3),
            "checks": [
                {
                    "invariant": INVARIANT_OF[check],
                    "check": check.name.lower(),
                    "description": check.value,
                    "checked": self.not_checked(check) is None,
                    "note": self.not_checked(check),
                    "violations": self.counts.get(check, 0),
                    "examples": [
                        {"sku": v.sku, "order_id": v.order_id, "detail": v.detail, **v.facts}
                        for v in self.examples.get(check, [])
                    ],
                }
                for check in Check
            ],
        }


def render_report(report: AuditReport, console: Console) -> None:
    """Print a summary table of every check, then the examples of what broke."""
    rate = report.events / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"[bold]stockflow audit[/bold] of {report.source}: {report.skus} SKUs, "
        f"{report.events} events, {report.open_lines} open order lines "
        f"({report.seconds:.2f} s, {rate:,.0f} events/s)"
    )
    orders = report.orders
    if orders.checked:
        console.print(
            f"orders of {orders.source}: {orders.orders} orders; reservations of unknown"
            f" orders: {orders.unknown_reservations}",
            highlight=False,
        )
    else:
        console.print(f"orders: invariant 5 {report.not_checked(Check.ORDERS)}", highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("check")
    table.add_column("result")
    for check in Check:
        count = report.counts.get(check, 0)
        if report.not_checked(check) is not None:
            result = "[yellow]not checked[/yellow]"
        else:
            result = "[green]ok[/green]" if count == 0 else f"[red]{count} broken[/red]"
        table.add_row(str(INVARIANT_OF[check]), check.value, result)
    console.print(table)
    for check in Check:
        examples = report.examples.get(check, [])
        if not examples:
            continue
        console.print(f"[red bold]{check.value}[/red bold]:")
        for violation in examples:
            where = " ".join(
                part
                for part in (
                    f"sku={violation.sku}" if violation.sku is not None else "",
                    f"order={violation.order_id}" if violation.order_id is not None else "",
                )
                if part
            )
            console.print(f"  {where}: {violation.detail}", highlight=False, markup=False)
        hidden = report.counts.get(check, 0) - len(examples)
        if hidden > 0:
            console.print(f"  … and {hidden} more")
    skipped = [check for check in Check if report.not_checked(check) is not None]
    passed = sum(1 for check in Check if report.counts.get(check, 0) == 0 and check not in skipped)
    verdict = "[green]PASSED[/green]" if report.ok else "[red]FAILED[/red]"
    tail = f", {len(skipped)} not checked" if skipped else ""
    console.print(f"{verdict}: {passed}/{len(Check)} checks hold{tail}")
