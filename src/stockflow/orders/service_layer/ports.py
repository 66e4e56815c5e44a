"""What the orders use cases need from the outside: a unit of work, its repository, the reads.

The adapters (:mod:`stockflow.orders.adapters`) implement these on SQLAlchemy; the use cases
(:mod:`.handlers`) see only the protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from stockflow.orders.domain.model import Order
from stockflow_kit.http import IdempotencyRecord
from stockflow_kit.messaging import Delivery, Envelope

__all__ = [
    "ConcurrentUpdateError",
    "OrderQueries",
    "OrderRepository",
    "PageCursor",
    "UnitOfWork",
]


class ConcurrentUpdateError(Exception):
    """An order changed between being read and written (the transaction is rolled back)."""


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a newest-first page ends: the last order's creation time and id."""

    created_at: float
    order_id: str


class OrderRepository(Protocol):
    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None: ...

    async def get_many(self, order_ids: Iterable[str]) -> dict[str, Order]: ...

    async def add_many(self, orders: Sequence[Order]) -> set[str]:
        """Insert the orders whose ids are free (in one statement); return the ids inserted."""
        ...

    async def save(self, order: Order, *, read_version: int) -> None:
        """Raises :class:`ConcurrentUpdateError` when the row is no longer at *read_version*."""
        ...

    async def due(self, now: float, limit: int) -> list[Order]: ...


class UnitOfWork(Protocol):
    """One transaction: ``async with uow: …; await uow.commit()``; leaving without a commit
    rolls back. Messages given to :meth:`publish` are stored in the outbox at commit, in the
    same transaction, and relayed afterwards."""

    @property
    def orders(self) -> OrderRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def new_messages(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Record the deliveries' ids (inbox) and return those never processed before."""
        ...

    async def record_answer(self, record: IdempotencyRecord) -> bool:
        """Store an Idempotency-Key answer; ``False`` when its key already has one."""
        ...

    async def record_answers(self, records: Sequence[IdempotencyRecord]) -> list[bool]:
        """:meth:`record_answer` for many, in one statement."""
        ...

    def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        trace: Mapping[str, str] | None = None,
    ) -> None: ...

    async def commit(self) -> None: ...


class OrderQueries(Protocol):
    """Reads that need no transaction of their own (they may lag a commit by nothing)."""

    async def get(self, order_id: str) -> Order | None: ...

    async def page(
        self, *, customer_id: str | None, after: PageCursor | None, limit: int
    ) -> Sequence[Order]: ...

    async def pending_oldest(self) -> float | None:
        """Creation time of the oldest PENDING order, if any."""
        ...
