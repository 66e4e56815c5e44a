"""A deterministic inventory workload for ``stockflow bench events``: command envelopes.

Same seed, same envelopes (ids included). The mix: one initial receipt per SKU, then receipts
(10 %), adjustments (5 %), multi-line reservations (1-4 lines, 50 %) and the settlement of a
previously reserved order (35 %: 70 % shipped, 30 % released). 20 % of the SKUs get 80 % of
the traffic. About 5 % of the envelopes are published twice with the same id: half right
away (a duplicate), half a few hundred commands later (a redelivery).

:class:`ReferenceModel` applies commands with the inventory's published rules (all-or-nothing
reservations, adjustments never below reserved, release/ship of what the order holds, dedupe
by envelope id). The generator uses it to size the workload: it stops once the model has
produced ``events`` stock events (``LowStockDetected`` is not modelled, so the worker commits a
little more). It is also the reference that the eventsourcing comparison must match.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from stockflow.contracts.inventory_commands import COMMAND_TYPES
from stockflow_kit.messaging import Envelope

__all__ = ["ReferenceModel", "Workload", "generate_workload"]

HOT_SHARE: Final = 0.2
HOT_TRAFFIC: Final = 0.8
DUPLICATE_RATE: Final = 0.05
_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH_MS: Final = int(_EPOCH.timestamp() * 1000)


@dataclass
class ReferenceModel:
    """Stock per SKU and held order lines, after the commands applied so far (in order)."""

    on_hand: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    held: dict[str, dict[str, int]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    events: int = 0
    rejections: int = 0

    def available(self, sku: str) -> int:
        return self.on_hand.get(sku, 0) - self.reserved.get(sku, 0)

    def apply(self, kind: str, data: dict[str, Any], message_id: str) -> int:
        """Apply one command envelope's effect; returns the stock events it yields."""
        if message_id in self.seen:
            return 0
        self.seen.add(message_id)
        before = self.events
        if kind == "ReceiveStock":
            self.on_hand[data["sku"]] = self.on_hand.get(data["sku"], 0) + data["qty"]
            self.events += 1
        elif kind == "AdjustStock":
            sku, after = data["sku"], self.on_hand.get(data["sku"], 0) + data["delta"]
            if data["delta"] != 0 and after >= max(0, self.reserved.get(sku, 0)):
                self.on_hand[sku] = after
                self.events += 1
        elif kind == "ReserveStock":
            self._reserve(data["order_id"], data["lines"])
        else:
            held = self.held.get(data["order_id"], {})
            for sku in data["skus"]:
                qty = held.pop(sku, None)
                if qty is None:
                    continue
                self.reserved[sku] -= qty
                if kind == "ShipStock":
                    self.on_hand[sku] -= qty
                self.events += 1
        return self.events - before

    def _reserve(self, order_id: str, lines: Iterable[dict[str, Any]]) -> None:
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["qty"]
        held = self.held.setdefault(order_id, {})
        if any(sku in held for sku in wanted):
            return
        if any(qty > self.available(sku) for sku, qty in wanted.items()):
            self.rejections += 1
            self.events += 1
            return
        for sku, qty in wanted.items():
            self.reserved[sku] = self.reserved.get(sku, 0) + qty
            held[sku] = qty
            self.events += 1

    def stock(self) -> dict[str, tuple[int, int]]:
        """``sku -> (on_hand, reserved)`` for every SKU touched."""
        return {sku: (n, self.reserved.get(sku, 0)) for sku, n in self.on_hand.items()}


@dataclass(frozen=True)
class Workload:
    """The envelopes to publish, in order (duplicates included), and what the model expects."""

    envelopes: list[Envelope]
    unique: int
    expected_events: int
    skus: list[str]
    model: ReferenceModel


def ordered_id(millis: int, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 (RFC 9562) of Unix time *millis*, its random bits drawn from *rng*."""
    high = (millis << 16) | (0x7 << 12) | rng.getrandbits(12)  # ms, version 7, rand_a
    low = (0b10 << 62) | rng.getrandbits(62)  # variant, rand_b
    return uuid.UUID(int=(high << 64) | low)


HISTORY_EPOCH_MS: Final = int(datetime(1999, 1, 1, tzinfo=UTC).timestamp() * 1000)
"""Where the ids of a preloaded history start: before every run's (1 ms per command)."""


class _Generator:
    def __init__(self, skus: int, seed: int, *, random_ids: bool = False) -> None:
        self.rng = random.Random(seed)
        self.random_ids = random_ids
        self.commands = 0
        self.skus = [f"SKU-{i:06d}" for i in range(skus)]
        self.hot = self.skus[: max(1, int(skus * HOT_SHARE))]
        self.cold = self.skus[len(self.hot) :] or self.hot
        self.model = ReferenceModel()
        self.open_orders: list[tuple[str, list[str]]] = []
        self.orders = 0

    def sku(self) -> str:
        pool = self.hot if self.rng.random() < HOT_TRAFFIC else self.cold
        return pool[self.rng.randrange(len(pool))]

    def envelope(self, kind: str, subject: str, data: dict[str, Any]) -> Envelope:
        if kind not in COMMAND_TYPES:  # a typo fails here, not in the worker
            raise ValueError(f"unknown command type {kind!r}")
        message_id = self.message_id()
        self.model.apply(kind, data, message_id)
        return Envelope(
            id=message_id,
            type=kind,
            source="bench",
            subject=subject,
            data=data,
            occurred_at=_EPOCH,
            correlation_id=message_id,
        )

    def message_id(self) -> str:
        """The next command's id: a UUIDv7 as the kit's ``new_message_id`` makes them (time
        ordered: one millisecond per command from the workload's epoch, so the same seed gives
        the same ids), or with ``random_ids`` a UUID4 (every key lands on a random index page)."""
        if self.random_ids:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.commands += 1
        return str(ordered_id(_EPOCH_MS + self.commands, self.rng))

    def next_command(self) -> Envelope:
        roll = self.rng.random()
        if roll < 0.10:
            sku = self.sku()
            return self.envelope(
                "ReceiveStock", sku, {"sku": sku, "qty": self.rng.randint(20, 200)}
            )
        if roll < 0.15:
            sku = self.sku()
            delta = self.rng.choice((-3, -2, -1, 1, 2, 5))
            return self.envelope("AdjustStock", sku, {"sku": sku, "delta": delta})
        if roll < 0.50 and self.open_orders:
            index = self.rng.randrange(min(len(self.open_orders), 64))
            order_id, skus = self.open_orders.pop(index)
            kind = "ShipStock" if self.rng.random() < 0.7 else "ReleaseReservation"
            return self.envelope(kind, order_id, {"order_id": order_id, "skus": skus})
        self.orders += 1
        order_id = f"order-{self.orders:08d}"
        lines = [
            {"sku": self.sku(), "qty": self.rng.randint(1, 5)}
            for _ in range(self.rng.randint(1, 4))
        ]
        envelope = self.envelope("ReserveStock", order_id, {"order_id": order_id, "lines": lines})
        if self.model.held.get(order_id):
            self.open_orders.append((order_id, sorted(self.model.held[order_id])))
        return envelope


def generate_workload(
    *, events: int, skus: int, seed: int = 42, random_ids: bool = False
) -> Workload:
    """Commands (in publish order) that make the inventory commit about *events* events.

    Their ids are time-ordered UUIDv7s, as every envelope the kit makes has
    (``Envelope.new``); ``random_ids`` makes them UUID4s instead, to see what ordered ids buy
    the event log's unique indexes (event ids derive from them, processed ids are them).
    """
    gen = _Generator(skus, seed, random_ids=random_ids)
    unique = [
        gen.envelope("ReceiveStock", sku, {"sku": sku, "qty": gen.rng.randint(0, 60) + 1})
        for sku in gen.skus
    ]
    while gen.model.events < events:
        unique.append(gen.next_command())
    published: list[Envelope] = []
    later: dict[int, list[Envelope]] = {}
    for index, envelope in enumerate(unique):
        published.append(envelope)
        published.extend(later.pop(index, ()))
        if gen.rng.random() < DUPLICATE_RATE:
            if gen.rng.random() < 0.5:
                published.append(envelope)
            else:
                later.setdefault(index + gen.rng.randint(100, 1000), []).append(envelope)
    for pending in later.values():
        published.extend(pending)
    return Workload(
        envelopes=published,
        unique=len(unique),
        expected_events=gen.model.events,
        skus=gen.skus,
        model=gen.model,
    )
