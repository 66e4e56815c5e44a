"""Notifications, webhooks and deliveries in and out of their tables, on the caller's
connection (its transaction). Inserts skip rows whose id exists (``ON CONFLICT DO NOTHING``),
so a replayed event can never add a second notification or delivery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from stockflow.notifications.adapters.orm import ATTEMPTS, DELIVERIES, NOTIFICATIONS, WEBHOOKS
from stockflow.notifications.domain.model import Attempt, Delivery, Notification, Webhook
from stockflow.notifications.service_layer.ports import PageCursor

__all__ = [
    "SqlDeliveryRepository",
    "SqlNotificationRepository",
    "SqlReads",
    "SqlWebhookRepository",
    "prune_deliveries",
]

_UNSETTLED = ("pending", "failed")


def _insert_new(connection: AsyncConnection, table: Table) -> Any:
    dialect = connection.dialect.name
    insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_into(table).on_conflict_do_nothing()


def notification_of(row: Any) -> Notification:
    return Notification(
        id=row.id,
        user_id=row.user_id,
        type=row.type,
        message=row.message,
        created_at=row.created_at,
        order_id=row.order_id,
        correlation_id=row.correlation_id,
    )


def webhook_of(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        events=tuple(row.events),
        secret=row.secret,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def delivery_of(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        webhook_id=row.webhook_id,
        event_id=row.event_id,
        event_type=row.event_type,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_status=row.last_status,
        last_error=row.last_error,
    )


def attempt_of(row: Any) -> Attempt:
    return Attempt(
        delivery_id=row.delivery_id,
        number=row.attempt,
        at=row.at,
        duration=row.duration,
        status=row.status,
        error=row.error,
        next_attempt_at=row.next_attempt_at,
    )


def _delivery_values(delivery: Delivery) -> dict[str, object]:
    return {
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "updated_at": delivery.updated_at,
    }


def _newest_first(table: Table, after: PageCursor | None, query: Any) -> Any:
    if after is not None:
        query = query.where(
            or_(
                table.c.created_at < after.created_at,
                and_(table.c.created_at == after.created_at, table.c.id < after.id),
            )
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc())


class SqlNotificationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add_many(self, notifications: Sequence[Notification]) -> int:
        if not notifications:
            return 0
        rows = [
            {
                "id": n.id,
                "user_id": n.user_id,
                "type": n.type,
                "message": n.message,
                "order_id": n.order_id,
                "correlation_id": n.correlation_id,
                "created_at": n.created_at,
            }
            for n in notifications
        ]
        statement = _insert_new(self.connection, NOTIFICATIONS).returning(NOTIFICATIONS.c.id)
        return len((await self.connection.execute(statement, rows)).all())


class SqlWebhookRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add(self, webhook: Webhook) -> None:
        await self.connection.execute(
            insert(WEBHOOKS).values(
                id=webhook.id,
                url=webhook.url,
                events=list(webhook.events),
                secret=webhook.secret,
                created_at=webhook.created_at,
                deleted_at=webhook.deleted_at,
            )
        )

    async def get(self, webhook_id: str) -> Webhook | None:
        query = select(WEBHOOKS).where(WEBHOOKS.c.id == webhook_id, WEBHOOKS.c.deleted_at.is_(None))
        row = (await self.connection.execute(query)).first()
        return None if row is None else webhook_of(row)

    async def live(self) -> list[Webhook]:
        query = (
            select(WEBHOOKS)
            .where(WEBHOOKS.c.deleted_at.is_(None))
            .order_by(WEBHOOKS.c.created_at, WEBHOOKS.c.id)
        )
        return [webhook_of(row) for row in (await self.connection.execute(query)).all()]

    async def delete(self, webhook_id: str, *, now: float) -> bool:
        result = await self.connection.execute(
            update(WEBHOOKS)
            .where(WEBHOOKS.c.id == webhook_id, WEBHOOKS.c.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        if result.rowcount != 1:
            return False
        await self.connection.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.webhook_id == webhook_id, DELIVERIES.c.status.in_(_UNSETTLED))
            .values(
                status="dead", next_attempt_at=None, last_error="webhook deleted", updated_at=now
            )
        )
        return True


class SqlDeliveryRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def add_many(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        rows = [
            {
                "id": d.id,
                "webhook_id": d.webhook_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "body": d.body,
                "created_at": d.created_at,
                **_delivery_values(d),
            }
            for d in deliveries
        ]
        statement = _insert_new(self.connection, DELIVERIES).returning(DELIVERIES.c.id)
        return len((await self.connection.execute(statement, rows)).all())

    async def claim(self, *, now: float, lease: float, limit: int) -> list[Delivery]:
        live = select(WEBHOOKS.c.id).where(WEBHOOKS.c.deleted_at.is_(None))
        query = (
            select(DELIVERIES)
            .where(
                DELIVERIES.c.status.in_(_UNSETTLED),
                DELIVERIES.c.next_attempt_at <= now,
                DELIVERIES.c.webhook_id.in_(live),
            )
            .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.created_at, DELIVERIES.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=DELIVERIES)
        )
        due = [delivery_of(row) for row in (await self.connection.execute(query)).all()]
        if due:
            await self.connection.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_([d.id for d in due]))
                .values(next_attempt_at=now + lease)
            )
        return due

    async def reschedule(self, delivery_ids: Sequence[str], *, at: float) -> None:
        if delivery_ids:
            await self.connection.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_(list(delivery_ids)), DELIVERIES.c.status.in_(_UNSETTLED))
                .values(next_attempt_at=at)
            )

    async def record(self, delivery: Delivery, attempt: Attempt) -> None:
        await self.connection.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == delivery.id)
            .values(**_delivery_values(delivery))
        )
        await self.connection.execute(
            _insert_new(self.connection, ATTEMPTS).values(
                delivery_id=attempt.delivery_id,
                attempt=attempt.number,
                at=attempt.at,
                duration=attempt.duration,
                status=attempt.status,
                error=attempt.error,
                next_attempt_at=attempt.next_attempt_at,
            )
        )


async def prune_deliveries(connection: AsyncConnection, *, before: float) -> int:
    """Forget delivered and dead deliveries settled before *before*, with their attempts;
    return how many deliveries."""
    old = select(DELIVERIES.c.id).where(
        DELIVERIES.c.status.in_(("delivered", "dead")), DELIVERIES.c.updated_at < before
    )
    await connection.execute(delete(ATTEMPTS).where(ATTEMPTS.c.delivery_id.in_(old)))
    result = await connection.execute(
        delete(DELIVERIES).where(
            DELIVERIES.c.status.in_(("delivered", "dead")), DELIVERIES.c.updated_at < before
        )
    )
    return int(result.rowcount)


class SqlReads:
    """The reads of :class:`~stockflow.notifications.service_layer.ports.Queries` on one
    connection."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def notification(self, notification_id: str) -> Notification | None:
        query = select(NOTIFICATIONS).where(NOTIFICATIONS.c.id == notification_id)
        row = (await self.connection.execute(query)).first()
        return None if row is None else notification_of(row)

    async def notifications(
        self, *, user_id: str, after: PageCursor | None, limit: int
    ) -> list[Notification]:
        query = select(NOTIFICATIONS).where(NOTIFICATIONS.c.user_id == user_id)
        query = _newest_first(NOTIFICATIONS, after, query).limit(limit)
        return [notification_of(row) for row in (await self.connection.execute(query)).all()]

    async def delivery(self, delivery_id: str) -> Delivery | None:
        query = select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)
        row = (await self.connection.execute(query)).first()
        return None if row is None else delivery_of(row)

    async def deliveries(
        self, *, webhook_id: str, after: PageCursor | None, limit: int
    ) -> list[Delivery]:
        query = select(DELIVERIES).where(DELIVERIES.c.webhook_id == webhook_id)
        query = _newest_first(DELIVERIES, after, query).limit(limit)
        return [delivery_of(row) for row in (await self.connection.execute(query)).all()]

    async def attempts(self, delivery_ids: Sequence[str]) -> Mapping[str, list[Attempt]]:
        found: dict[str, list[Attempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return found
        query = (
            select(ATTEMPTS)
            .where(ATTEMPTS.c.delivery_id.in_(list(delivery_ids)))
            .order_by(ATTEMPTS.c.delivery_id, ATTEMPTS.c.attempt)
        )
        for row in (await self.connection.execute(query)).all():
            found[row.delivery_id].append(attempt_of(row))
        return found

    async def backlog(self) -> int:
        query = select(func.count()).where(DELIVERIES.c.status.in_(_UNSETTLED))
        return int((await self.connection.execute(query)).scalar() or 0)
