"""The orders use cases: place, cancel, ship, the inventory's answers and the saga timer.

Each runs in ONE unit of work: read the orders it touches (locked), decide with the pure
domain, store the changes, hand their events and compensations to the outbox, record the
consumed message ids (inbox) or the HTTP answer (Idempotency-Key), commit. Nothing is acked
to the bus or answered to a client before that commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from opentelemetry import propagate
from prometheus_client import CollectorRegistry

from stockflow.orders.domain import model
from stockflow.orders.domain.model import Change, Fact, Line, Order
from stockflow.orders.service_layer.messages import publish_change
from stockflow.orders.service_layer.ports import UnitOfWork
from stockflow.orders.service_layer.telemetry import OrdersMetrics
from stockflow_kit.http import IdempotencyRecord
from stockflow_kit.lifecycle import GroupCommit
from stockflow_kit.messaging import Delivery

__all__ = ["Caller", "InventoryFact", "NotAllowedError", "OrderHandlers", "UnknownOrderError"]

_log = structlog.get_logger("stockflow.orders")


class UnknownOrderError(Exception):
    """No such order, or not one the caller may see (the same answer: never leak ids)."""


class NotAllowedError(Exception):
    """The caller's role may not do this (only staff ship)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, as edge verified it: a user id (``None`` for staff tools) and a role."""

    user_id: str | None
    role: str = "customer"

    @property
    def staff(self) -> bool:
        return self.role == "staff"

    def may_see(self, order: Order) -> bool:
        return self.staff or order.customer_id == self.user_id


@dataclass(frozen=True, slots=True)
class InventoryFact:
    """What an inventory event tells about one order."""

    order_id: str
    fact: Fact


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """One placement waiting for its group commit."""

    change: Change
    answer: IdempotencyRecord | None
    correlation_id: str | None
    trace: dict[str, str]


@dataclass(frozen=True, slots=True)
class Placement:
    """The order placed; ``None`` with ``duplicate`` when an earlier request placed it."""

    order: Order | None
    duplicate: bool = False


class OrderHandlers:
    """The use cases over a unit-of-work factory; see the module docstring."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        saga_timeout: float,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.uow, self.saga_timeout, self.clock = uow, saga_timeout, clock
        self.metrics = OrdersMetrics(registry)
        self.placements: GroupCommit[PlacementRequest, Placement] = GroupCommit(
            "orders-placements", self._commit_placements, registry=registry
        )

    async def place(
        self,
        order_id: str,
        customer_id: str,
        lines: tuple[Line, ...],
        *,
        answer: Callable[[Order], IdempotencyRecord] | None = None,
        correlation_id: str | None = None,
    ) -> Placement:
        """Store a PENDING order and its ``OrderPlaced``; with *answer*, its HTTP answer too.

        Placements waiting at the same moment commit together (:attr:`placements`, a group
        commit): one transaction and one disk flush for all of them."""
        change = model.place(
            order_id, customer_id, lines, now=self.clock(), timeout=self.saga_timeout
        )
        trace: dict[str, str] = {}
        propagate.inject(trace)
        request = PlacementRequest(
            change,
            None if answer is None else answer(change.order),
            correlation_id,
            trace,
        )
        return await self.placements.submit(request)

    async def _commit_placements(self, requests: Sequence[PlacementRequest]) -> list[Placement]:
        async with self.uow() as uow:
            keyed = [r.answer for r in requests if r.answer is not None]
            fresh = iter(await uow.record_answers(keyed))
            new = [r for r in requests if r.answer is None or next(fresh)]
            added = await uow.orders.add_many([r.change.order for r in new])
            for request in new:
                if request.change.order.id in added:
                    publish_change(
                        uow,
                        request.change,
                        correlation_id=request.correlation_id,
                        trace=request.trace,
                    )
            await uow.commit()
        self.metrics.placed.inc(len(added))
        return [
            Placement(r.change.order) if r.change.order.id in added else Placement(None, True)
            for r in requests
        ]

    async def cancel(self, order_id: str, caller: Caller, *, correlation_id: str | None) -> Order:
        return await self._command(order_id, caller, model.cancel, correlation_id)

    async def ship(self, order_id: str, caller: Caller, *, correlation_id: str | None) -> Order:
        if not caller.staff:
            raise NotAllowedError("only staff ship orders")
        return await self._command(order_id, caller, model.ship, correlation_id)

    async def _command(
        self,
        order_id: str,
        caller: Caller,
        decide: Callable[..., Change],
        correlation_id: str | None,
    ) -> Order:
        async with self.uow() as uow:
            order = await uow.orders.get(order_id, for_update=True)
            if order is None or not caller.may_see(order):
                raise UnknownOrderError(f"no order {order_id!r}")
            change = decide(order, now=self.clock())
            if not change.changed:
                return order
            await uow.orders.save(change.order, read_version=order.version)
            publish_change(uow, change, correlation_id=correlation_id)
            await uow.commit()
        self.metrics.settled(order, change.order, self.clock())
        return change.order

    async def on_inventory(self, items: Sequence[tuple[Delivery, InventoryFact]]) -> None:
        """Apply a consumed batch of inventory facts once each (inbox), in one transaction."""
        now = self.clock()
        changed: list[tuple[Order, Order]] = []
        async with self.uow() as uow:
            fresh = {id(d) for d in await uow.new_messages([d for d, _ in items])}
            facts = [(d, f) for d, f in items if id(d) in fresh]
            orders = await uow.orders.get_many(f.order_id for _, f in facts)
            read = {order_id: order.version for order_id, order in orders.items()}
            for delivery, item in facts:
                order = orders.get(item.order_id)
                if order is None:  # not an order of ours (a direct ReserveStock command)
                    self.metrics.foreign_facts.inc()
                    continue
                change = model.apply_fact(order, item.fact, now=now)
                if change.releases and not change.changed:
                    self.metrics.compensations.inc()
                    _log.info(
                        "orders.reservation_compensated",
                        order_id=order.id,
                        status=order.status,
                        skus=list(change.releases),
                    )
                if change.changed:
                    changed.append((order, change.order))
                    orders[order.id] = change.order
                envelope = delivery.envelope
                publish_change(
                    uow, change, correlation_id=envelope.correlation_id, causation_id=envelope.id
                )
            for order_id, version in read.items():
                if orders[order_id].version != version:
                    await uow.orders.save(orders[order_id], read_version=version)
            await uow.commit()
        for before, after in changed:
            self.metrics.settled(before, after, now)

    async def expire(self, *, limit: int = 200) -> int:
        """Reject the PENDING orders past their saga deadline (releasing what they may hold);
        return how many. Runs in batches of *limit* until none is due."""
        expired = 0
        while True:
            now = self.clock()
            changes: list[tuple[Order, Order]] = []
            async with self.uow() as uow:
                due = await uow.orders.due(now, limit)
                for order in due:
                    change = model.time_out(order, now=now)
                    await uow.orders.save(change.order, read_version=order.version)
                    publish_change(uow, change, correlation_id=f"saga-timeout-{order.id}")
                    changes.append((order, change.order))
                await uow.commit()
            for before, after in changes:
                self.metrics.timeouts.inc()
                self.metrics.settled(before, after, now)
                _log.warning(
                    "orders.saga_timed_out",
                    order_id=before.id,
                    pending_seconds=round(now - before.created_at, 3),
                )
            expired += len(due)
            if len(due) < limit:
                return expired
