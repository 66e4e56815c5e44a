"""Published schemas of the profiles service: its HTTP DTOs and its event.

ONE consolidated service owns everything about a customer (identity, contact data, addresses,
preferences): the seed's lesson of four fragmented profile services merged into one.

HTTP (internal; edge fronts it with ``GET /me`` and ``PUT /me``; every route needs the service
credential and the caller's identity, :mod:`stockflow.contracts.identity`):

- ``GET /profiles/{user_id}``: :class:`ProfileView`; the owner or staff, else 404;
- ``PUT /profiles/{user_id}``: body :class:`ProfileUpdate` creates or replaces it (the owner
  only): 200 :class:`ProfileView`; an ``If-Match: "<version>"`` header makes it conditional
  (412 when the stored version differs);
- ``GET /profiles?cursor=&limit=``: staff only, :class:`ProfilesPage` by user id.

Event: ``ProfileUpdated`` on :data:`PROFILES_EVENTS_TOPIC` (``subject`` = user id, ``sequence``
= the profile's version) after every change, through the outbox.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

__all__ = [
    "MAX_ADDRESSES",
    "PROFILES_EVENTS_TOPIC",
    "USER_ID_PATTERN",
    "Address",
    "ProfileUpdate",
    "ProfileUpdated",
    "ProfileView",
    "ProfilesPage",
    "UserId",
]

PROFILES_EVENTS_TOPIC: Final = "profiles.events"
MAX_ADDRESSES: Final = 10
USER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=USER_ID_PATTERN)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
# Whitespace spelled out: Python's ``\s`` also matches \x1c-\x1f and Unicode spaces that
# JSON Schema's (ECMA 262) does not, so the published pattern and msgspec disagreed.
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        pattern=r"^[^@ \t\n\r\f\v]{1,64}@[^@ \t\n\r\f\v]+\.[^@ \t\n\r\f\v]+$",
    ),
]


class Address(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    label: Text = ""
    line1: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    line2: Text = ""
    city: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    postal_code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
    """ISO 3166-1 alpha-2."""


Preferences = Annotated[
    dict[Annotated[str, msgspec.Meta(min_length=1, max_length=50)], str | int | bool],
    msgspec.Meta(max_length=50),
]


class ProfileUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /profiles/{user_id}`` body: the whole profile (a replace, not a patch)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    email: Email
    addresses: Annotated[list[Address], msgspec.Meta(max_length=MAX_ADDRESSES)] = []
    preferences: Preferences = {}


class ProfileView(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    name: str
    email: str
    addresses: list[Address]
    preferences: dict[str, str | int | bool]
    version: int
    updated_at: str
    """RFC 3339 UTC."""


class ProfilesPage(msgspec.Struct, frozen=True, kw_only=True):
    profiles: list[ProfileView]
    next: str | None
    """Pass as ``cursor`` for the next page (the last user id); ``None`` on the last page."""


class ProfileUpdated(msgspec.Struct, frozen=True, kw_only=True):
    """A profile was created or replaced; ``version`` counts its changes."""

    user_id: str
    name: str
    email: str
    version: int
