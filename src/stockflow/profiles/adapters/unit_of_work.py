"""The profiles service's unit of work (the platform's, with its repository) and its reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from stockflow.platform.sql import Database, SqlUnitOfWork
from stockflow.platform.sql_keys import read_by_key
from stockflow.profiles.adapters.orm import PROFILES
from stockflow.profiles.adapters.repository import SqlProfileRepository, profile_of
from stockflow.profiles.domain.model import Profile

__all__ = ["ProfilesUnitOfWork", "SqlProfileQueries"]


class ProfilesUnitOfWork(SqlUnitOfWork):
    """The platform's unit of work with the profiles repository."""

    def opened(self, connection: AsyncConnection) -> None:
        self._profiles = SqlProfileRepository(connection)

    @property
    def profiles(self) -> SqlProfileRepository:
        return self._profiles


class SqlProfileQueries:
    """Reads on the reader engine (deferred transactions: they never wait for the writer)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._by_key = None if database.keys is None else database.keys.lookup(PROFILES)

    async def get(self, user_id: str) -> Profile | None:
        """SQLite: on the event loop (:mod:`stockflow.platform.sql_keys`); else the engine."""
        return await read_by_key(self._by_key, user_id, profile_of, lambda: self._read(user_id))

    async def _read(self, user_id: str) -> Profile | None:
        async with self.database.reader.connect() as connection:
            return await SqlProfileRepository(connection).get(user_id)

    async def page(self, *, after: str | None, limit: int) -> Sequence[Profile]:
        async with self.database.reader.connect() as connection:
            return await SqlProfileRepository(connection).page(after=after, limit=limit)
