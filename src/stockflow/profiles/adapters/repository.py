"""Profiles in and out of the ``profiles`` table, on the caller's connection (its transaction).

Rows map to :class:`~stockflow.profiles.domain.model.Profile` values and back. Changes are
conditional on the version read (``UPDATE … WHERE user_id = ? AND version = ?``); together
with the row lock taken by :meth:`SqlProfileRepository.get` (``FOR UPDATE`` on PostgreSQL;
SQLite's write transactions are exclusive) two writers of one profile never both win, and
two creators of one profile meet at the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from stockflow.profiles.adapters.orm import PROFILES
from stockflow.profiles.domain.model import Address, Contents, Preference, Profile
from stockflow.profiles.service_layer.ports import ConcurrentUpdateError

__all__ = ["SqlProfileRepository", "profile_of"]


def _address_of(value: Any) -> Address:
    return Address(
        line1=value["line1"],
        city=value["city"],
        postal_code=value["postal_code"],
        country=value["country"],
        label=value.get("label", ""),
        line2=value.get("line2", ""),
    )


def profile_of(row: Any) -> Profile:
    """The profile a row of ``profiles`` holds."""
    document = row.contents
    preferences: dict[str, Preference] = dict(document.get("preferences", {}))
    contents = Contents(
        name=document["name"],
        email=document["email"],
        addresses=tuple(_address_of(a) for a in document.get("addresses", [])),
        preferences=preferences,
    )
    return Profile(row.user_id, contents, version=row.version, updated_at=row.updated_at)


def _document(contents: Contents) -> dict[str, object]:
    return {
        "name": contents.name,
        "email": contents.email,
        "addresses": [
            {
                "label": a.label,
                "line1": a.line1,
                "line2": a.line2,
                "city": a.city,
                "postal_code": a.postal_code,
                "country": a.country,
            }
            for a in contents.addresses
        ],
        "preferences": dict(contents.preferences),
    }


class SqlProfileRepository:
    """The profiles of one connection; see the module docstring."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def get(self, user_id: str, *, for_update: bool = False) -> Profile | None:
        query = select(PROFILES).where(PROFILES.c.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.connection.execute(query)).first()
        return None if row is None else profile_of(row)

    async def add(self, profile: Profile) -> None:
        """Raises :class:`ConcurrentUpdateError` when the profile exists already (the
        transaction is spoilt: the caller leaves it, which rolls it back)."""
        statement = insert(PROFILES).values(
            user_id=profile.user_id,
            contents=_document(profile.contents),
            version=profile.version,
            updated_at=profile.updated_at,
        )
        try:
            await self.connection.execute(statement)
        except IntegrityError:
            raise ConcurrentUpdateError(
                f"the profile of {profile.user_id!r} was created meanwhile"
            ) from None

    async def save(self, profile: Profile, *, read_version: int) -> None:
        """Store *profile* over the row read at ``read_version``.

        Raises:
            ConcurrentUpdateError: the row changed since it was read.
        """
        statement = (
            update(PROFILES)
            .where(PROFILES.c.user_id == profile.user_id, PROFILES.c.version == read_version)
            .values(
                contents=_document(profile.contents),
                version=profile.version,
                updated_at=profile.updated_at,
            )
        )
        result = await self.connection.execute(statement)
        if result.rowcount != 1:
            raise ConcurrentUpdateError(f"the profile of {profile.user_id!r} changed meanwhile")

    async def page(self, *, after: str | None, limit: int) -> Sequence[Profile]:
        """Up to *limit* profiles by user id, after *after*."""
        query = select(PROFILES)
        if after is not None:
            query = query.where(PROFILES.c.user_id > after)
        query = query.order_by(PROFILES.c.user_id).limit(limit)
        return [profile_of(row) for row in (await self.connection.execute(query)).all()]
