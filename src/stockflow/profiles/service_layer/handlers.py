"""The profiles use cases: read one, write one (create or replace), page through all.

Who may do what is decided here, from the :class:`Caller` edge verified:

- read a profile: its owner or staff; anyone else is told it does not exist (404, the same
  answer as for a missing profile, so ids are never confirmed);
- write a profile: its owner only, staff included (staff write their own, never another's);
- list profiles: staff only.

A write runs in ONE unit of work: read the profile (locked), decide with the pure domain,
store it and its ``ProfileUpdated`` (outbox), commit. A write that changes nothing stores
nothing and publishes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter

from stockflow.profiles.domain.model import Contents, Precondition, Profile, replace_profile
from stockflow.profiles.service_layer.messages import publish_update
from stockflow.profiles.service_layer.ports import ProfileQueries, UnitOfWork

__all__ = ["Caller", "NotAllowedError", "ProfileHandlers", "UnknownProfileError"]

_log = structlog.get_logger("stockflow.profiles")


class UnknownProfileError(Exception):
    """No such profile, or not one the caller may see (the same answer: never leak ids)."""


class NotAllowedError(Exception):
    """The caller may not do this (write another's profile, list profiles as a customer)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, as edge verified it: a user id (``None`` for staff tools) and a role."""

    user_id: str | None
    role: str = "customer"

    @property
    def staff(self) -> bool:
        return self.role == "staff"

    def may_read(self, user_id: str) -> bool:
        return self.staff or self.user_id == user_id

    def may_write(self, user_id: str) -> bool:
        return self.user_id == user_id


class ProfileHandlers:
    """The use cases over a unit-of-work factory and the reads; see the module docstring."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        queries: ProfileQueries,
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.uow, self.queries, self.clock = uow, queries, clock
        self.writes = Counter(
            "profiles_writes",
            "Profile writes by outcome (created, updated, unchanged).",
            ["outcome"],
            registry=registry,
        )

    async def get(self, user_id: str, caller: Caller) -> Profile:
        """Raises :class:`UnknownProfileError` when missing or not the caller's to see."""
        if not caller.may_read(user_id):
            raise UnknownProfileError(f"no profile {user_id!r}")
        profile = await self.queries.get(user_id)
        if profile is None:
            raise UnknownProfileError(f"no profile {user_id!r}")
        return profile

    async def put(
        self,
        user_id: str,
        contents: Contents,
        caller: Caller,
        *,
        precondition: Precondition | None = None,
        correlation_id: str | None = None,
    ) -> Profile:
        """Create or replace the profile of *user_id*; return it as stored.

        Raises:
            NotAllowedError: the caller is not its owner.
            InvalidProfileError, PreconditionFailedError: from the domain.
            ConcurrentUpdateError: another write won meanwhile (nothing was stored).
        """
        if not caller.may_write(user_id):
            raise NotAllowedError("a profile is written by its owner only")
        async with self.uow() as uow:
            current = await uow.profiles.get(user_id, for_update=True)
            change = replace_profile(
                current, user_id, contents, now=self.clock(), precondition=precondition
            )
            if not change.changed:
                self.writes.labels("unchanged").inc()
                return change.profile
            if current is None:
                await uow.profiles.add(change.profile)
            else:
                await uow.profiles.save(change.profile, read_version=current.version)
            publish_update(uow, change.profile, correlation_id=correlation_id)
            await uow.commit()
        outcome = "created" if change.created else "updated"
        self.writes.labels(outcome).inc()
        _log.info(
            "profiles.written", user_id=user_id, version=change.profile.version, outcome=outcome
        )
        return change.profile

    async def page(self, caller: Caller, *, after: str | None, limit: int) -> Sequence[Profile]:
        """Up to *limit* profiles by user id after *after*. Staff only.

        Raises:
            NotAllowedError: the caller is not staff.
        """
        if not caller.staff:
            raise NotAllowedError("only staff list profiles")
        return await self.queries.page(after=after, limit=limit)
