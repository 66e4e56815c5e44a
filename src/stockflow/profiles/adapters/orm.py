"""The profiles database: its SQLAlchemy Core tables (the alembic migrations create them).

``profiles`` holds one row per user: the contents (name, email, addresses, preferences) as
one JSON document, the version and the time of the last change (Unix seconds, the same in
SQLite and PostgreSQL). One document rather than a column per field because the contents are
always written and read whole, and because JSON escapes what a PostgreSQL ``text`` column
refuses (a NUL character is valid in a JSON string, so it is valid in a name). The kit's
outbox lives in the same database, so a change and its ``ProfileUpdated`` commit together.
The primary key orders the staff's pages: byte order of the user ids on both databases
(SQLite's ``BINARY``; PostgreSQL's ``C`` collation, not the database's locale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table

from stockflow_kit.messaging.sqlalchemy import outbox_table

__all__ = ["METADATA", "MIGRATIONS", "OUTBOX", "PROFILES", "USER_ID"]

USER_ID: Final = String(200).with_variant(String(200, collation="C"), "postgresql")
"""A user id column: compared and ordered byte by byte on either database."""

METADATA: Final = MetaData()
MIGRATIONS: Final = Path(__file__).with_name("migrations")
"""The alembic directory of the profiles database."""

PROFILES: Final = Table(
    "profiles",
    METADATA,
    Column("user_id", USER_ID, primary_key=True),
    Column("contents", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

OUTBOX: Final = outbox_table(METADATA, "outbox")
