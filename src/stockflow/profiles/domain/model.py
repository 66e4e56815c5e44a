"""A customer's profile and its one rule of change, as values: :func:`replace_profile`.

A profile is written whole (a replace, not a patch) by its owner. Its ``version`` counts its
changes: 1 when created, one more on every write that changes something. A write that
changes nothing (the same contents again: a retry, a replay) is no change at all: same
version, same ``updated_at``, no event.

Writes may be conditional (``If-Match``): a :class:`Precondition` names the versions the
writer saw (or ``*``: any existing profile). When it does not hold the write is refused with
:class:`PreconditionFailedError`, unless the write would change nothing: then it has already
been applied (its answer was lost, the client retries) and it succeeds as the no-op it is
(RFC 9110, section 13.1.1: "the change requested by the user agent has already succeeded").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "MAX_ADDRESSES",
    "MAX_PREFERENCES",
    "Address",
    "Change",
    "Contents",
    "InvalidProfileError",
    "Precondition",
    "PreconditionFailedError",
    "Preference",
    "Profile",
    "replace_profile",
]

MAX_ADDRESSES: Final = 10
"""The most addresses one profile holds (the published ``MAX_ADDRESSES``)."""
MAX_PREFERENCES: Final = 50
"""The most preferences one profile holds."""

Preference = str | int | bool


class InvalidProfileError(Exception):
    """The contents break a rule of the profile (too many addresses, no name …)."""


class PreconditionFailedError(Exception):
    """A conditional write named versions the profile is not at."""

    def __init__(self, user_id: str, current: int | None) -> None:
        state = (
            "does not exist"
            if current is None
            else f'is at version {current} (If-Match: "{current}")'
        )
        super().__init__(f"the profile of {user_id!r} {state}: read it again, then write")
        self.user_id, self.current = user_id, current


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    city: str
    postal_code: str
    country: str
    """ISO 3166-1 alpha-2."""
    label: str = ""
    line2: str = ""


@dataclass(frozen=True, slots=True)
class Contents:
    """What the owner writes: everything in a profile but its identity and bookkeeping."""

    name: str
    email: str
    addresses: tuple[Address, ...] = ()
    preferences: Mapping[str, Preference] = field(default_factory=dict)

    def same_as(self, other: Contents) -> bool:
        """Equal, with preferences compared by JSON value (``true`` is not ``1``, as it is
        for Python's ``==``) and regardless of their order."""
        return (self.name, self.email, self.addresses) == (
            other.name,
            other.email,
            other.addresses,
        ) and _canonical(self.preferences) == _canonical(other.preferences)


def _canonical(preferences: Mapping[str, Preference]) -> str:
    return json.dumps(preferences, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Profile:
    user_id: str
    contents: Contents
    version: int
    """1 when created, one more per change."""
    updated_at: float
    """Unix seconds of the last change."""


@dataclass(frozen=True, slots=True)
class Precondition:
    """An ``If-Match``: the versions the writer accepts (``None``: any existing profile)."""

    versions: frozenset[int] | None = None

    def holds(self, current: Profile | None) -> bool:
        if current is None:
            return False  # nothing matches a profile that does not exist, not even "*"
        return self.versions is None or current.version in self.versions


@dataclass(frozen=True, slots=True)
class Change:
    """The profile after a write; ``changed`` is ``False`` when it was already so."""

    profile: Profile
    changed: bool
    created: bool = False


def _check(contents: Contents) -> None:
    if not contents.name:
        raise InvalidProfileError("a profile needs a name")
    if not contents.email:
        raise InvalidProfileError("a profile needs an email address")
    if len(contents.addresses) > MAX_ADDRESSES:
        raise InvalidProfileError(
            f"a profile holds at most {MAX_ADDRESSES} addresses, not {len(contents.addresses)}"
        )
    if len(contents.preferences) > MAX_PREFERENCES:
        raise InvalidProfileError(f"a profile holds at most {MAX_PREFERENCES} preferences")


def replace_profile(
    current: Profile | None,
    user_id: str,
    contents: Contents,
    *,
    now: float,
    precondition: Precondition | None = None,
) -> Change:
    """Write *contents* as the profile of *user_id* (created when *current* is ``None``).

    Raises:
        InvalidProfileError: *contents* break a rule.
        PreconditionFailedError: *precondition* does not hold and the write would change
            something.
    """
    if not user_id:
        raise InvalidProfileError("a profile needs a user id")
    if current is not None and current.user_id != user_id:
        raise ValueError(f"the profile of {current.user_id!r} is not {user_id!r}'s")
    _check(contents)
    if current is not None and current.contents.same_as(contents):
        return Change(current, changed=False)
    if precondition is not None and not precondition.holds(current):
        raise PreconditionFailedError(user_id, None if current is None else current.version)
    version = 1 if current is None else current.version + 1
    profile = Profile(user_id, contents, version=version, updated_at=now)
    return Change(profile, changed=True, created=current is None)
