"""Invariant 5: every order the orders database records, against what the inventory's event
log holds and shipped for it (the auditor's own fold, :class:`~stockflow.audit.fold.AuditFold`).

By status: CONFIRMED holds exactly its lines (summed per SKU) and shipped nothing; SHIPPED
holds nothing and was shipped exactly its lines; REJECTED and CANCELLED hold and shipped
nothing; PENDING may hold anything (in flight) unless it is past its saga deadline
(``expires_at`` older than now - grace). Open reservations of order ids the database does not
know are only counted (the inventory also takes ReserveStock commands directly).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from stockflow.audit.fold import AuditFold
from stockflow.audit.report import Check, Violation

__all__ = ["DEFAULT_GRACE", "OrdersCheck"]

DEFAULT_GRACE: Final = 5.0
"""Seconds a PENDING order may outlive its ``expires_at`` (the saga timer's own latency)."""

_HOLDS_NOTHING: Final = frozenset({"REJECTED", "CANCELLED"})
_KNOWN: Final = _HOLDS_NOTHING | {"PENDING", "CONFIRMED", "SHIPPED"}

Lines = dict[str, int]


class OrdersCheck:
    """Feed every order with :meth:`add` after the fold has seen the whole event log."""

    def __init__(self, fold: AuditFold, *, now: float, grace: float = DEFAULT_GRACE) -> None:
        if fold.shipped is None:
            raise ValueError("invariant 5 needs AuditFold(track_shipped=True)")
        self.fold = fold
        self.now = now
        self.grace = grace
        self.orders = 0
        self._held = _by_order(fold.held)
        self._shipped = _by_order(fold.shipped)

    @property
    def unknown_reservations(self) -> int:
        """Open order lines of order ids not fed to :meth:`add` (call after the last order)."""
        return sum(len(lines) for lines in self._held.values())

    def add(self, order_id: str, status: str, lines: object, expires_at: object) -> None:
        """Check one order row: ``lines`` is its JSON list of ``[sku, qty]`` pairs."""
        self.orders += 1
        held = self._held.pop(order_id, {})
        shipped = self._shipped.pop(order_id, {})
        facts: dict[str, Any] = {"status": status}
        if status not in _KNOWN:
            self._report(order_id, f"unknown status {status!r}", facts)
            return
        expected = _parse_lines(lines)
        if expected is None:
            facts["lines"] = lines if isinstance(lines, str) else repr(lines)
            self._report(order_id, f"{status}: lines are not a list of [sku, qty] pairs", facts)
            return
        if status == "PENDING":
            self._check_pending(order_id, expires_at, facts)
            return
        holds = expected if status == "CONFIRMED" else {}
        ships = expected if status == "SHIPPED" else {}
        problems = [
            f"{verb} {_show(found)}, expected {_show(wanted)}"
            for verb, found, wanted in (("holds", held, holds), ("shipped", shipped, ships))
            if found != wanted
        ]
        if problems:
            facts |= {"lines": expected, "held": held, "shipped": shipped}
            skus = _differing(held, holds) | _differing(shipped, ships)
            sku = next(iter(skus)) if len(skus) == 1 else None
            self._report(order_id, f"{status}: {'; '.join(problems)}", facts, sku=sku)

    def _check_pending(self, order_id: str, expires_at: object, facts: dict[str, Any]) -> None:
        if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
            facts["expires_at"] = repr(expires_at)
            self._report(
                order_id, f"PENDING without a saga deadline (expires_at {expires_at!r})", facts
            )
            return
        overdue = self.now - expires_at
        if overdue > self.grace:
            deadline = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
            facts |= {"expires_at": float(expires_at), "overdue_s": round(overdue, 3)}
            self._report(
                order_id,
                f"PENDING {overdue:.1f} s past its saga deadline {deadline}"
                f" (grace {self.grace:g} s)",
                facts,
            )

    def _report(
        self, order_id: str, detail: str, facts: dict[str, Any], sku: str | None = None
    ) -> None:
        self.fold.report(Violation(Check.ORDERS, detail, sku=sku, order_id=order_id, facts=facts))


def _by_order(lines: Mapping[tuple[str, str], int]) -> dict[str, Lines]:
    """``{(order_id, sku): qty}`` regrouped as ``{order_id: {sku: qty}}``."""
    grouped: dict[str, Lines] = {}
    for (order_id, sku), qty in lines.items():
        grouped.setdefault(order_id, {})[sku] = qty
    return grouped


def _parse_lines(raw: object) -> Lines | None:
    """The order's lines summed per SKU, or None when they are not ``[[sku, qty>0], …]``."""
    try:
        pairs = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        return None
    if not isinstance(pairs, list):
        return None
    summed: Lines = {}
    for pair in pairs:
        match pair:
            case [str() as sku, int() as qty] if qty > 0 and not isinstance(qty, bool):
                summed[sku] = summed.get(sku, 0) + qty
            case _:
                return None
    return summed


def _differing(found: Lines, wanted: Lines) -> set[str]:
    return {sku for sku in found.keys() | wanted.keys() if found.get(sku) != wanted.get(sku)}


def _show(lines: Lines) -> str:
    if not lines:
        return "nothing"
    return "{" + ", ".join(f"{sku}: {qty}" for sku, qty in sorted(lines.items())) + "}"
