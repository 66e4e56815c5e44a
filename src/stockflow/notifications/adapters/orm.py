"""The notifications database: its SQLAlchemy Core tables (the alembic migrations create them).

``notifications`` holds the in-app notifications (id = the event's id); ``webhooks`` the
subscriptions (soft-deleted: ``deleted_at``); ``deliveries`` the queue and state of every
event sent to a webhook (id = the ``webhook-id``, derived from webhook and event); and
``delivery_attempts`` the delivery log, one row per attempt. The kit's inbox (processed
message ids) is in the same database, so a consumed event, its notification, its queued
deliveries and its id commit in one transaction. Times are Unix seconds (``Float``).

Indexes: ``(user_id, created_at, id)`` serves a user's newest-first page,
``(status, next_attempt_at)`` the dispatcher's "due" scan, ``(webhook_id, created_at, id)``
the delivery log's pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy import JSON, Column, Float, Index, Integer, MetaData, String, Table, Text

from stockflow_kit.messaging.sqlalchemy import inbox_table

__all__ = ["ATTEMPTS", "DELIVERIES", "INBOX", "METADATA", "MIGRATIONS", "NOTIFICATIONS", "WEBHOOKS"]

METADATA: Final = MetaData()
MIGRATIONS: Final = Path(__file__).with_name("migrations")
"""The alembic directory of the notifications database."""

NOTIFICATIONS: Final = Table(
    "notifications",
    METADATA,
    Column("id", String(100), primary_key=True),
    Column("user_id", String(200), nullable=False),
    Column("type", String(50), nullable=False),
    Column("message", Text, nullable=False),
    Column("order_id", String(100), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("correlation_id", String(200), nullable=True),
    Index("notifications_by_user", "user_id", "created_at", "id"),
)

WEBHOOKS: Final = Table(
    "webhooks",
    METADATA,
    Column("id", String(100), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("secret", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deleted_at", Float, nullable=True),
)

DELIVERIES: Final = Table(
    "deliveries",
    METADATA,
    Column("id", String(100), primary_key=True),
    Column("webhook_id", String(100), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("event_type", String(50), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("deliveries_due", "status", "next_attempt_at"),
    Index("deliveries_by_webhook", "webhook_id", "created_at", "id"),
)

ATTEMPTS: Final = Table(
    "delivery_attempts",
    METADATA,
    Column("delivery_id", String(100), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("duration", Float, nullable=False),
    Column("status", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("next_attempt_at", Float, nullable=True),
)

INBOX: Final = inbox_table(METADATA, "inbox")
