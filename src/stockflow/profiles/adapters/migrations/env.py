"""Alembic's environment for the profiles database (run by ``stockflow.platform.sql.migrate``)."""

from stockflow.platform.sql import alembic_env
from stockflow.profiles.adapters.orm import METADATA

alembic_env(METADATA)
