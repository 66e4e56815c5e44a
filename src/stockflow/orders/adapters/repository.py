"""Orders in and out of the ``orders`` table, on the caller's connection (its transaction).

Rows map to :class:`~stockflow.orders.domain.model.Order` values and back. Changes are
conditional on the version read (``UPDATE … WHERE id = ? AND version = ?``); together with the
row lock taken by :meth:`SqlOrderRepository.get` (``FOR UPDATE`` on PostgreSQL; SQLite's write
transactions are exclusive) two writers of one order can never both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from stockflow.orders.adapters.orm import ORDERS
from stockflow.orders.domain.model import Line, Order, Status
from stockflow.orders.service_layer.ports import ConcurrentUpdateError, PageCursor

__all__ = ["SqlOrderRepository", "order_of"]


def order_of(row: Any) -> Order:
    """The order a row of ``orders`` holds."""
    lines: tuple[Line, ...] = tuple((str(sku), int(qty)) for sku, qty in row.lines)
    status: Status = row.status
    return Order(
        id=row.id,
        customer_id=row.customer_id,
        lines=lines,
        status=status,
        reason=row.reason,
        reserved=frozenset(row.reserved),
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        version=row.version,
    )


def _values(order: Order) -> dict[str, object]:
    return {
        "customer_id": order.customer_id,
        "status": order.status,
        "reason": order.reason,
        "lines": [[sku, qty] for sku, qty in order.lines],
        "reserved": sorted(order.reserved),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "expires_at": order.expires_at,
        "version": order.version,
    }


class SqlOrderRepository:
    """The orders of one connection; see the module docstring."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        query = select(ORDERS).where(ORDERS.c.id == order_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.connection.execute(query)).first()
        return None if row is None else order_of(row)

    async def get_many(self, order_ids: Iterable[str]) -> dict[str, Order]:
        """The orders among *order_ids* that exist, locked for update."""
        ids = sorted(set(order_ids))  # one lock order for every transaction: no deadlock
        if not ids:
            return {}
        query = select(ORDERS).where(ORDERS.c.id.in_(ids)).order_by(ORDERS.c.id)
        rows = (await self.connection.execute(query.with_for_update())).all()
        return {row.id: order_of(row) for row in rows}

    async def add_many(self, orders: Sequence[Order]) -> set[str]:
        """Insert the orders whose ids are free, in one statement; return the ids inserted."""
        if not orders:
            return set()
        dialect = self.connection.dialect.name
        insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert_into(ORDERS)
            .values([{"id": order.id, **_values(order)} for order in orders])
            .on_conflict_do_nothing()
            .returning(ORDERS.c.id)
        )
        return {row.id for row in await self.connection.execute(statement)}

    async def save(self, order: Order, *, read_version: int) -> None:
        """Store *order* over the row read at ``read_version``.

        Raises:
            ConcurrentUpdateError: the row changed since it was read.
        """
        statement = (
            update(ORDERS)
            .where(ORDERS.c.id == order.id, ORDERS.c.version == read_version)
            .values(**_values(order))
        )
        result = await self.connection.execute(statement)
        if result.rowcount != 1:
            raise ConcurrentUpdateError(f"order {order.id!r} changed while it was being updated")

    async def due(self, now: float, limit: int) -> list[Order]:
        """PENDING orders whose saga deadline passed, oldest deadline first, locked."""
        query = (
            select(ORDERS)
            .where(ORDERS.c.status == "PENDING", ORDERS.c.expires_at <= now)
            .order_by(ORDERS.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [order_of(row) for row in (await self.connection.execute(query)).all()]

    async def page(
        self, *, customer_id: str | None, after: PageCursor | None, limit: int
    ) -> Sequence[Order]:
        """Up to *limit* orders (of *customer_id*, or everyone's), newest first, after *after*."""
        query = select(ORDERS)
        if customer_id is not None:
            query = query.where(ORDERS.c.customer_id == customer_id)
        if after is not None:
            query = query.where(
                or_(
                    ORDERS.c.created_at < after.created_at,
                    and_(ORDERS.c.created_at == after.created_at, ORDERS.c.id < after.order_id),
                )
            )
        query = query.order_by(ORDERS.c.created_at.desc(), ORDERS.c.id.desc()).limit(limit)
        return [order_of(row) for row in (await self.connection.execute(query)).all()]
