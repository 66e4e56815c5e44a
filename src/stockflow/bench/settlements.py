"""When each order settled, read from the bus: the bench's own durable on ``orders.events``.

``OrderConfirmed`` / ``OrderRejected`` carry the order id as ``subject`` and their
``occurred_at`` is when the orders service decided the settlement (stamped in the transaction
that stores it). ``OrderPlaced``'s ``occurred_at`` is when the order was stored (in the
transaction that answers the 202). The first settlement of an order counts; an order that is
later settled the other way (it must not be) is counted in ``conflicting``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from stockflow.bench.waiting import STALL_SECONDS, wait_for_count
from stockflow.contracts.orders import ORDERS_EVENTS_TOPIC
from stockflow_kit.messaging import Bus, Subscription, make_bus

__all__ = ["Settlement", "SettlementListener"]

FETCH: Final = 1000
STATUS: Final = {"OrderConfirmed": "CONFIRMED", "OrderRejected": "REJECTED"}


@dataclass(frozen=True, slots=True)
class Settlement:
    status: str
    at: float
    """The settlement event's ``occurred_at`` (Unix seconds)."""
    reason: str = ""


@dataclass
class SettlementListener:
    """Consume ``orders.events`` in the background (:meth:`start` .. :meth:`close`)."""

    bus_url: str
    durable: str
    placed_at: dict[str, float] = field(default_factory=dict)
    settled: dict[str, Settlement] = field(default_factory=dict)
    conflicting: set[str] = field(default_factory=set)
    _bus: Bus | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._bus = make_bus(self.bus_url, name="bench-settlements")
        await self._bus.start()
        subscription = await self._bus.subscribe(ORDERS_EVENTS_TOPIC, self.durable)
        self._task = asyncio.create_task(self._consume(subscription))

    async def _consume(self, subscription: Subscription) -> None:
        try:
            while True:
                deliveries = await subscription.fetch(FETCH, max_wait=0.2)
                for delivery in deliveries:
                    envelope = delivery.envelope
                    at = envelope.occurred_at.timestamp()
                    if envelope.type == "OrderPlaced":
                        self.placed_at.setdefault(envelope.subject, at)
                    elif envelope.type in STATUS:
                        self._settle(
                            envelope.subject,
                            Settlement(STATUS[envelope.type], at, envelope.data.get("reason", "")),
                        )
                if deliveries:
                    await subscription.ack(deliveries)
        finally:
            await subscription.close()

    def _settle(self, order_id: str, settlement: Settlement) -> None:
        first = self.settled.setdefault(order_id, settlement)
        if first.status != settlement.status:
            self.conflicting.add(order_id)

    async def until_settled(
        self,
        order_ids: Collection[str],
        *,
        stall_seconds: float = STALL_SECONDS,
    ) -> float:
        """Wait until every one of *order_ids* settled; return when the bench saw the last.

        Raises:
            RuntimeError: when no order settles for *stall_seconds*, or the consumer died.
        """

        async def settled() -> int:
            if self._task is not None and self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the settlement consumer stopped")
            return sum(1 for order_id in order_ids if order_id in self.settled)

        return await wait_for_count(
            settled,
            len(order_ids),
            every=0.05,
            stall_seconds=stall_seconds,
            stalled=lambda count: (
                f"no order settled for {stall_seconds:.0f} s"
                f" ({count}/{len(order_ids)}); see the services' log above"
            ),
        )

    async def close(self) -> None:
        """Stop consuming and close the bus. Never raises what stopped the consumer: that was
        raised by :meth:`until_settled` already, or the run is failing for another reason."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            if not self._task.cancelled():
                self._task.exception()  # retrieved, so asyncio does not log it again
        if self._bus is not None:
            await self._bus.close()
