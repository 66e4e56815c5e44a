"""The orders table, with the kit's outbox, inbox and Idempotency-Key tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stockflow_kit.http.sqlalchemy import idempotency_table
from stockflow_kit.messaging.sqlalchemy import inbox_table, outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("reserved", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("orders_by_customer", "orders", ["customer_id", "created_at", "id"])
    op.create_index("orders_by_time", "orders", ["created_at", "id"])
    op.create_index("orders_by_deadline", "orders", ["status", "expires_at"])
    # The kit's tables as the kit defines them at this revision.
    kit = sa.MetaData()
    outbox_table(kit, "outbox")
    inbox_table(kit, "inbox")
    idempotency_table(kit, "idempotency_keys")
    kit.create_all(op.get_bind())


def downgrade() -> None:
    for table in ("idempotency_keys", "inbox", "outbox"):
        op.drop_table(table)
    op.drop_table("orders")
