"""The notifications unit of work (the platform's, with its repositories) and its reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from stockflow.notifications.adapters.repository import (
    SqlDeliveryRepository,
    SqlNotificationRepository,
    SqlReads,
    SqlWebhookRepository,
)
from stockflow.notifications.domain.model import Attempt, Delivery, Notification, Webhook
from stockflow.notifications.service_layer.ports import PageCursor
from stockflow.platform.sql import Database, SqlUnitOfWork

__all__ = ["NotificationsUnitOfWork", "SqlQueries"]


class NotificationsUnitOfWork(SqlUnitOfWork):
    """The platform's unit of work (inbox, no outbox: notifications publishes nothing) with
    the notifications, webhooks and deliveries repositories."""

    def opened(self, connection: AsyncConnection) -> None:
        self._notifications = SqlNotificationRepository(connection)
        self._webhooks = SqlWebhookRepository(connection)
        self._deliveries = SqlDeliveryRepository(connection)

    @property
    def notifications(self) -> SqlNotificationRepository:
        return self._notifications

    @property
    def webhooks(self) -> SqlWebhookRepository:
        return self._webhooks

    @property
    def deliveries(self) -> SqlDeliveryRepository:
        return self._deliveries


class SqlQueries:
    """Reads on the reader engine (deferred transactions: they never wait for the writer)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def notification(self, notification_id: str) -> Notification | None:
        async with self.database.reader.connect() as connection:
            return await SqlReads(connection).notification(notification_id)

    async def notifications(
        self, *, user_id: str, after: PageCursor | None, limit: int
    ) -> Sequence[Notification]:
        async with self.database.reader.connect() as connection:
            return await SqlReads(connection).notifications(
                user_id=user_id, after=after, limit=limit
            )

    async def webhook(self, webhook_id: str) -> Webhook | None:
        async with self.database.reader.connect() as connection:
            return await SqlWebhookRepository(connection).get(webhook_id)

    async def webhooks(self) -> Sequence[Webhook]:
        async with self.database.reader.connect() as connection:
            return await SqlWebhookRepository(connection).live()

    async def delivery(self, delivery_id: str) -> Delivery | None:
        async with self.database.reader.connect() as connection:
            return await SqlReads(connection).delivery(delivery_id)

    async def deliveries(
        self, *, webhook_id: str, after: PageCursor | None, limit: int
    ) -> Sequence[Delivery]:
        async with self.database.reader.connect() as connection:
            return await SqlReads(connection).deliveries(
                webhook_id=webhook_id, after=after, limit=limit
            )

    async def attempts(self, delivery_ids: Sequence[str]) -> Mapping[str, Sequence[Attempt]]:
        async with self.database.reader.connect() as connection:
            return await SqlReads(connection).attempts(delivery_ids)

    async def backlog(self) -> int:
        async with self.database.reader.connect() as connection:
            return await SqlReads(connection).backlog()
