"""Each service's own PostgreSQL database, created when missing.

``stockflow up --distributed`` (and ``serve``) give every service a database of its own
(``stockflow_inventory``, ``stockflow_orders``, …). On a fresh server none exists: rather than
dying with the driver's ``InvalidCatalogNameError``, the runner creates it through the
server's maintenance database (``postgres``), once, before the service starts.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["ensure_database", "is_postgres_url"]

_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in {"postgresql", "postgres"}


async def ensure_database(url: str, *, connect_seconds: float = 10.0) -> bool:
    """Create the database *url* names if it does not exist; ``True`` if it was created.

    Raises:
        ValueError: the database name is not a plain identifier.
        OSError, asyncpg.PostgresError: the server cannot be reached or refused.
    """
    import asyncpg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not _NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    admin_url = parts._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(admin_url, timeout=connect_seconds)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:  # created meanwhile by a sibling process
            return False
        return True
    finally:
        await conn.close()
