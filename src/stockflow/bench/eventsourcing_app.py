"""The same workload through the eventsourcing library (9.x), for ``stockflow bench events``.

One ``Stock`` aggregate per SKU (explicit style: each event class applies itself), id
``uuid5(namespace, sku)``, with the inventory's rules: all-or-nothing reservations, adjustments
never below reserved, release and ship of what the order holds. Aggregates stay in memory (as
the inventory keeps its partitions' states) and are saved ``save_batch`` at a time with one
``app.save(*aggregates)`` call: one recorder transaction per call, the library's batching.
Duplicate envelopes are skipped by id with an in-memory set (the library has no inbox outside
its process-application machinery), which favours it slightly: nothing of that is persisted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from stockflow_kit.messaging import Envelope

__all__ = ["EventsourcingResult", "Stock", "StockApplication", "run_eventsourcing"]

_NAMESPACE: Final = uuid.UUID("6f1d6c4e-8a57-4f0e-9a8c-5e0a3f3b2c11")


class Stock(Aggregate):
    """One SKU: ``on_hand``, ``reserved`` and the quantity each order holds."""

    class Created(Aggregate.Created):
        sku: str

    class Received(Aggregate.Event):
        qty: int

        def apply(self, aggregate: Any) -> None:
            aggregate.on_hand += self.qty

    class Adjusted(Aggregate.Event):
        delta: int

        def apply(self, aggregate: Any) -> None:
            aggregate.on_hand += self.delta

    class Reserved(Aggregate.Event):
        order_id: str
        qty: int

        def apply(self, aggregate: Any) -> None:
            aggregate.reserved += self.qty
            aggregate.held[self.order_id] = self.qty

    class Rejected(Aggregate.Event):
        order_id: str

    class Released(Aggregate.Event):
        order_id: str
        qty: int

        def apply(self, aggregate: Any) -> None:
            aggregate.reserved -= self.qty
            del aggregate.held[self.order_id]

    class Shipped(Aggregate.Event):
        order_id: str
        qty: int

        def apply(self, aggregate: Any) -> None:
            aggregate.reserved -= self.qty
            aggregate.on_hand -= self.qty
            del aggregate.held[self.order_id]

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.on_hand = 0
        self.reserved = 0
        self.held: dict[str, int] = {}

    @classmethod
    def open(cls, sku: str) -> Stock:
        return cls._create(cls.Created, id=uuid.uuid5(_NAMESPACE, sku), sku=sku)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockApplication(Application[uuid.UUID]):
    """Decides commands against in-memory aggregates; :meth:`flush` saves the changed ones."""

    def __init__(self, env: Mapping[str, str] | None = None, save_batch: int = 100) -> None:
        super().__init__(env)
        self.stocks: dict[str, Stock] = {}
        self.dirty: dict[str, Stock] = {}
        self.seen: set[str] = set()
        self.save_batch = save_batch
        self.saved_events = 0

    def _stock(self, sku: str) -> Stock:
        stock = self.stocks.get(sku)
        if stock is None:
            stock = self.stocks[sku] = Stock.open(sku)
        self.dirty[sku] = stock
        return stock

    def handle(self, kind: str, data: dict[str, Any], message_id: str) -> None:
        if message_id in self.seen:
            return
        self.seen.add(message_id)
        if kind == "ReceiveStock":
            self._stock(data["sku"]).trigger_event(Stock.Received, qty=data["qty"])
        elif kind == "AdjustStock":
            stock, delta = self._stock(data["sku"]), data["delta"]
            if delta != 0 and stock.on_hand + delta >= max(0, stock.reserved):
                stock.trigger_event(Stock.Adjusted, delta=delta)
        elif kind == "ReserveStock":
            self._reserve(data["order_id"], data["lines"])
        else:
            event = Stock.Shipped if kind == "ShipStock" else Stock.Released
            for sku in data["skus"]:
                stock = self._stock(sku)
                held = stock.held.get(data["order_id"])
                if held is not None:
                    stock.trigger_event(event, order_id=data["order_id"], qty=held)
        if len(self.dirty) >= self.save_batch:
            self.flush()

    def _reserve(self, order_id: str, lines: Iterable[dict[str, Any]]) -> None:
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["qty"]
        stocks = {sku: self._stock(sku) for sku in wanted}
        if any(order_id in stock.held for stock in stocks.values()):
            return
        short = [sku for sku, qty in wanted.items() if qty > stocks[sku].available]
        if short:
            stocks[short[0]].trigger_event(Stock.Rejected, order_id=order_id)
            return
        for sku, qty in wanted.items():
            stocks[sku].trigger_event(Stock.Reserved, order_id=order_id, qty=qty)

    def flush(self) -> None:
        if self.dirty:
            recordings = self.save(*self.dirty.values())
            # Creation events are bookkeeping of the library, not stock events: not counted.
            self.saved_events += sum(
                not isinstance(r.domain_event, Stock.Created) for r in recordings
            )
            self.dirty.clear()

    def stock(self) -> dict[str, tuple[int, int]]:
        return {sku: (s.on_hand, s.reserved) for sku, s in self.stocks.items()}


@dataclass(frozen=True)
class EventsourcingResult:
    """What the library did: events saved, seconds, and whether it ran out of time."""

    events: int
    commands: int
    seconds: float
    save_batch: int
    capped: bool
    stock: dict[str, tuple[int, int]]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def run_eventsourcing(
    envelopes: list[Envelope],
    env: Mapping[str, str],
    *,
    save_batch: int = 100,
    time_cap: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> EventsourcingResult:
    """Apply *envelopes* in order with a :class:`StockApplication` configured by *env*."""
    app = StockApplication(env=dict(env), save_batch=save_batch)
    started = time.perf_counter()
    done = 0
    capped = False
    try:
        for done, envelope in enumerate(envelopes, 1):
            app.handle(envelope.type, envelope.data, envelope.id)
            if done % 10_000 == 0:
                elapsed = time.perf_counter() - started
                if progress is not None:
                    progress(
                        f"eventsourcing: {done}/{len(envelopes)} commands,"
                        f" {app.saved_events / elapsed:,.0f} events/s"
                    )
                if elapsed > time_cap:
                    capped = True
                    break
        app.flush()
        seconds = time.perf_counter() - started
    finally:
        app.close()
    return EventsourcingResult(
        events=app.saved_events,
        commands=done,
        seconds=seconds,
        save_batch=save_batch,
        capped=capped,
        stock=app.stock(),
    )
