"""The SQLAlchemy unit of work and reads of the orders service.

One :class:`SqlUnitOfWork` is one transaction on the writer engine: the repository, the kit's
inbox (processed message ids), the kit's Idempotency-Key store and the kit's outbox all write
on its connection, so a change, its events, the ids that caused it and the HTTP answer that
reports it commit together or not at all. After a commit the outbox relay is woken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from stockflow.orders.adapters.database import Database
from stockflow.orders.adapters.orm import ORDERS
from stockflow.orders.adapters.repository import SqlOrderRepository
from stockflow.orders.domain.model import Order
from stockflow.orders.service_layer.ports import DuplicateOrderError, PageCursor
from stockflow_kit.http import IdempotencyRecord
from stockflow_kit.http.sqlalchemy import SqlAlchemyIdempotencyStore
from stockflow_kit.messaging import Delivery, Envelope
from stockflow_kit.messaging.sqlalchemy import SqlAlchemyInbox, SqlAlchemyOutbox

__all__ = ["SqlOrderQueries", "SqlUnitOfWork", "TransactionalRepository"]


class TransactionalRepository(SqlOrderRepository):
    """The repository of a unit of work: a taken id is a :class:`DuplicateOrderError`."""

    async def add(self, order: Order) -> None:
        try:
            await super().add(order)
        except IntegrityError:  # the transaction is spoilt: the caller leaves it (rollback)
            raise DuplicateOrderError(order.id) from None


class SqlUnitOfWork:
    """One write transaction; see the module docstring."""

    def __init__(
        self,
        database: Database,
        *,
        outbox: SqlAlchemyOutbox,
        inbox: SqlAlchemyInbox,
        answers: SqlAlchemyIdempotencyStore,
        committed: Callable[[], None] = lambda: None,
    ) -> None:
        self.database, self.outbox, self.inbox, self.answers = database, outbox, inbox, answers
        self.committed = committed
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None
        self._outgoing: list[tuple[str, Sequence[Envelope]]] = []

    async def __aenter__(self) -> Self:
        self._connection = await self.database.writer.connect()
        try:
            self._transaction = await self._connection.begin()
        except BaseException:
            await self._connection.close()
            raise
        self._orders = TransactionalRepository(self._connection)
        self._outgoing = []
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        try:
            if transaction is not None and transaction.is_active:
                await transaction.rollback()
        finally:
            if connection is not None:
                await connection.close()

    @property
    def orders(self) -> TransactionalRepository:
        return self._orders

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._connection

    async def new_messages(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        return await self.inbox.filter_new(self.connection, deliveries)

    async def record_answer(self, record: IdempotencyRecord) -> bool:
        return await self.answers.add(self.connection, record)

    def publish(self, topic: str, envelopes: Sequence[Envelope]) -> None:
        if envelopes:
            self._outgoing.append((topic, envelopes))

    async def commit(self) -> None:
        connection, transaction = self.connection, self._transaction
        assert transaction is not None
        for topic, envelopes in self._outgoing:
            await self.outbox.add(connection, topic, envelopes)
        await transaction.commit()
        if self._outgoing:
            self._outgoing = []
            self.committed()


class SqlOrderQueries:
    """Reads on the reader engine (deferred transactions: they never wait for the writer)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, order_id: str) -> Order | None:
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
