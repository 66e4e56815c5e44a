"""Alembic's environment for the orders database.

Run migrations through :func:`stockflow.orders.adapters.database.migrate` (the service does at
start-up), which hands alembic an open connection in ``config.attributes["connection"]``. For
a new revision, generate it against a scratch database, for example::

    alembic -x url=sqlite:///scratch.sqlite3 ... (see docs/orders.md)
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from stockflow.orders.adapters.orm import METADATA

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run the orders migrations through stockflow.orders.adapters.database.migrate,"
        " which passes an open connection"
    )
context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
