"""Alembic's environment for the orders database (run by ``stockflow.platform.sql.migrate``)."""

from stockflow.orders.adapters.orm import METADATA
from stockflow.platform.sql import alembic_env

alembic_env(METADATA)
