"""Alembic's environment for the notifications database (run by ``stockflow.platform.sql.migrate``)."""

from stockflow.notifications.adapters.orm import METADATA
from stockflow.platform.sql import alembic_env

alembic_env(METADATA)
