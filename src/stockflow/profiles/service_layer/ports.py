"""What the profiles use cases need from the outside: a unit of work, its repository, the reads.

The adapters (:mod:`stockflow.profiles.adapters`) implement these on SQLAlchemy; the use cases
(:mod:`.handlers`) see only the protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self

from stockflow.profiles.domain.model import Profile
from stockflow_kit.messaging import Envelope

__all__ = [
    "ConcurrentUpdateError",
    "ProfileQueries",
    "ProfileRepository",
    "UnitOfWork",
]


class ConcurrentUpdateError(Exception):
    """A profile changed (or was created) between being read and written: retry."""


class ProfileRepository(Protocol):
    async def get(self, user_id: str, *, for_update: bool = False) -> Profile | None: ...

    async def add(self, profile: Profile) -> None:
        """Raises :class:`ConcurrentUpdateError` when the profile exists already."""
        ...

    async def save(self, profile: Profile, *, read_version: int) -> None:
        """Raises :class:`ConcurrentUpdateError` when the row is no longer at *read_version*."""
        ...


class UnitOfWork(Protocol):
    """One transaction: ``async with uow: …; await uow.commit()``; leaving without a commit
    rolls back. Messages given to :meth:`publish` are stored in the outbox at commit, in the
    same transaction, and relayed afterwards."""

    @property
    def profiles(self) -> ProfileRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def publish(
        self,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        trace: Mapping[str, str] | None = None,
    ) -> None: ...

    async def commit(self) -> None: ...


class ProfileQueries(Protocol):
    """Reads that need no transaction of their own."""

    async def get(self, user_id: str) -> Profile | None: ...

    async def page(self, *, after: str | None, limit: int) -> Sequence[Profile]:
        """Up to *limit* profiles by user id, those after *after* (a user id) only."""
        ...
