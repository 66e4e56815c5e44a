"""The profiles table, with the kit's outbox table.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from stockflow_kit.messaging.sqlalchemy import outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column(
            "user_id",
            sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql"),
            primary_key=True,
        ),
        sa.Column("contents", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    # The kit's table as the kit defines it at this revision.
    kit = sa.MetaData()
    outbox_table(kit, "outbox")
    kit.create_all(op.get_bind())


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("profiles")
