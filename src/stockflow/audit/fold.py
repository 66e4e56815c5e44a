"""The auditor's own fold of the inventory event log, checking invariants 2-4 as it goes.

Independent of ``stockflow.inventory`` on purpose (CONVENTIONS.md): it decodes the published
event schemas (``stockflow.contracts.inventory``) and re-derives every SKU's stock itself, so a
bug in the inventory's fold cannot hide in the audit. Events are fed in log order (position),
one at a time; per-event checks run after *every* event, not only at the end.

Order lines: ``held[(order_id, sku)]`` is the quantity an order holds on a SKU. Reserving a held
line is a double reservation; releasing or shipping more than is held, or a line not held, is
a phantom movement. A partial release or shipment leaves the rest held. With
``track_shipped``, ``shipped[(order_id, sku)]`` sums what was shipped per line (invariant 5
compares it with the orders' lines; off by default, it costs memory per shipped line).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from stockflow.audit.report import MAX_EXAMPLES, Check, Violation
from stockflow.contracts.inventory import (
    EVENT_TYPES,
    ReservationRejected,
    ReservationReleased,
    StockAdjusted,
    StockReceived,
    StockReserved,
    StockShipped,
)

__all__ = ["AuditFold", "SkuTotals"]

_DECODERS: Final = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_TYPES.items()}


class SkuTotals:
    """One SKU as the auditor sees it after the events folded so far."""

    __slots__ = (
        "adjusted",
        "events",
        "last_sequence",
        "on_hand",
        "received",
        "rejections",
        "reserved",
        "shipped",
    )

    def __init__(self) -> None:
        self.on_hand = 0
        self.reserved = 0
        self.events = 0
        self.last_sequence = 0
        self.received = 0
        self.adjusted = 0
        self.shipped = 0
        self.rejections = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class AuditFold:
    """Feed events with :meth:`add` in log order; read :attr:`skus` and :attr:`violations`."""

    def __init__(self, max_examples: int = MAX_EXAMPLES, *, track_shipped: bool = False) -> None:
        self.skus: dict[str, SkuTotals] = {}
        self.held: dict[tuple[str, str], int] = {}
        self.shipped: dict[tuple[str, str], int] | None = {} if track_shipped else None
        self.events = 0
        self.max_examples = max_examples
        self.violations: dict[Check, list[Violation]] = {check: [] for check in Check}
        self.counts: dict[Check, int] = dict.fromkeys(Check, 0)

    def report(self, violation: Violation) -> None:
        """Count *violation*; keep it as an example while fewer than ``max_examples`` are."""
        self.counts[violation.check] += 1
        examples = self.violations[violation.check]
        if len(examples) < self.max_examples:
            examples.append(violation)

    def add(self, position: int, stream: str, sequence: int, kind: str, data: bytes) -> None:
        """Fold one event of *stream* (a SKU) and check everything that must hold after it."""
        self.events += 1
        totals = self.skus.get(stream)
        if totals is None:
            totals = self.skus[stream] = SkuTotals()
        where = f"position {position}, sequence {sequence}"
        if sequence != totals.last_sequence + 1:
            self.report(
                Violation(
                    Check.SEQUENCES,
                    f"{where}: expected sequence {totals.last_sequence + 1}",
                    sku=stream,
                )
            )
        totals.last_sequence = max(totals.last_sequence, sequence)
        totals.events += 1
        decoder = _DECODERS.get(kind)
        if decoder is None:
            self.report(Violation(Check.DECODING, f"{where}: unknown type {kind!r}", sku=stream))
            return
        try:
            event = decoder.decode(data)
        except msgspec.DecodeError as err:
            self.report(Violation(Check.DECODING, f"{where}: {kind} unreadable: {err}", sku=stream))
            return
        if event.sku != stream:
            self.report(
                Violation(Check.DECODING, f"{where}: {kind} names SKU {event.sku!r}", sku=stream)
            )
        self._apply(totals, stream, event, where)
        if totals.on_hand < 0 or totals.reserved < 0 or totals.available < 0:
            self.report(
                Violation(
                    Check.NON_NEGATIVE,
                    f"after {kind} at {where}: on_hand={totals.on_hand}"
                    f" reserved={totals.reserved} available={totals.available}",
                    sku=stream,
                )
            )

    def _apply(self, totals: SkuTotals, sku: str, event: msgspec.Struct, where: str) -> None:
        match event:
            case StockReceived(qty=qty):
                totals.on_hand += qty
                totals.received += qty
            case StockAdjusted(delta=delta):
                totals.on_hand += delta
                totals.adjusted += delta
            case StockReserved(order_id=order_id, qty=qty):
                line = (order_id, sku)
                if line in self.held:
                    self.report(
                        Violation(
                            Check.ORDER_LINES,
                            f"{where}: reserved {qty} again while {self.held[line]} is held",
                            sku=sku,
                            order_id=order_id,
                        )
                    )
                self.held[line] = self.held.get(line, 0) + qty
                totals.reserved += qty
            case ReservationReleased(order_id=order_id, qty=qty):
                self._settle(totals, sku, order_id, qty, "released", where)
            case StockShipped(order_id=order_id, qty=qty):
                self._settle(totals, sku, order_id, qty, "shipped", where)
                totals.on_hand -= qty
                totals.shipped += qty
                if self.shipped is not None:
                    line = (order_id, sku)
                    self.shipped[line] = self.shipped.get(line, 0) + qty
            case ReservationRejected():  # a fact that moves no stock
                totals.rejections += 1
            case _:  # LowStockDetected: likewise
                pass

    def _settle(
        self, totals: SkuTotals, sku: str, order_id: str, qty: int, verb: str, where: str
    ) -> None:
        line = (order_id, sku)
        held = self.held.pop(line, 0)
        if held == 0:
            detail = f"{where}: {verb} {qty} without a reservation held"
        elif qty > held:
            detail = f"{where}: {verb} {qty} but only {held} was reserved"
        else:
            detail = ""
            if held > qty:
                self.held[line] = held - qty
        if detail:
            self.report(Violation(Check.ORDER_LINES, detail, sku=sku, order_id=order_id))
        totals.reserved -= qty

    def finish(self, served: Iterable[tuple[str, int, int, int]]) -> None:
        """Compare the served projection rows ``(sku, on_hand, reserved, version)`` (invariant 1)
        and check conservation (invariant 3) for every SKU."""
        seen: set[str] = set()
        for sku, on_hand, reserved, version in served:
            seen.add(sku)
            totals = self.skus.get(sku) or SkuTotals()
            folded = (totals.on_hand, totals.reserved, totals.events)
            if (on_hand, reserved, version) != folded:
                self.report(_mismatch(sku, (on_hand, reserved, version), folded))
            flow = totals.received + totals.adjusted - totals.shipped
            if flow != on_hand:
                self.report(
                    Violation(
                        Check.CONSERVATION,
                        f"received {totals.received} + adjustments {totals.adjusted}"
                        f" - shipped {totals.shipped} = {flow}, served on_hand {on_hand}",
                        sku=sku,
                    )
                )
        for sku in sorted(self.skus.keys() - seen):
            totals = self.skus[sku]
            if totals.events == totals.rejections:
                continue  # only rejected reservations: a stream, but no stock (API.md 404)
            self.report(
                Violation(
                    Check.PROJECTION,
                    f"no served stock row; the fold gives on_hand={totals.on_hand}"
                    f" reserved={totals.reserved} version={totals.events}",
                    sku=sku,
                )
            )


def _mismatch(sku: str, served: tuple[int, int, int], folded: tuple[int, int, int]) -> Violation:
    names = ("on_hand", "reserved", "version")
    parts = [
        f"{name} served {s} != folded {f}"
        for name, s, f in zip(names, served, folded, strict=True)
        if s != f
    ]
    return Violation(Check.PROJECTION, "; ".join(parts), sku=sku)
