"""The orders service's unit of work (the platform's, with its repository) and its reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from stockflow.orders.adapters.orm import ORDERS
from stockflow.orders.adapters.repository import SqlOrderRepository, order_of
from stockflow.orders.domain.model import Order
from stockflow.orders.service_layer.ports import PageCursor
from stockflow.platform.sql import Database, SqlUnitOfWork
from stockflow.platform.sql_keys import read_by_key

__all__ = ["OrdersUnitOfWork", "SqlOrderQueries"]


class OrdersUnitOfWork(SqlUnitOfWork):
    """The platform's unit of work with the orders repository."""

    def opened(self, connection: AsyncConnection) -> None:
        self._orders = SqlOrderRepository(connection)

    @property
    def orders(self) -> SqlOrderRepository:
        return self._orders


class SqlOrderQueries:
    """Reads on the reader engine (deferred transactions: they never wait for the writer)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._by_key = None if database.keys is None else database.keys.lookup(ORDERS)

    async def get(self, order_id: str) -> Order | None:
        """SQLite: on the event loop (:mod:`stockflow.platform.sql_keys`); else the engine."""
        return await read_by_key(self._by_key, order_id, order_of, lambda: self._read(order_id))

    async def _read(self, order_id: str) -> Order | None:
        async with self.database.reader.connect() as connection:
            return await SqlOrderRepository(connection).get(order_id)

    async def page(
        self, *, customer_id: str | None, after: PageCursor | None, limit: int
    ) -> Sequence[Order]:
        async with self.database.reader.connect() as connection:
            return await SqlOrderRepository(connection).page(
                customer_id=customer_id, after=after, limit=limit
            )

    async def pending_oldest(self) -> float | None:
        query = select(func.min(ORDERS.c.created_at)).where(ORDERS.c.status == "PENDING")
        async with self.database.reader.connect() as connection:
            value = (await connection.execute(query)).scalar()
        return None if value is None else float(value)
