"""The correlation id of the request that caused each notification.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as table:
        table.add_column(sa.Column("correlation_id", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as table:
        table.drop_column("correlation_id")
