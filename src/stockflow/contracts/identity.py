"""Who is calling an internal service: the headers edge sets from the verified JWT.

Internal services trust these headers only on requests that carry the service credential
(``Authorization: Bearer <service token>``); edge strips them from what clients send and sets
them from the token's claims (``sub`` and ``role``).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["ROLES", "ROLE_HEADER", "USER_HEADER", "Role"]

USER_HEADER: Final = "X-Stockflow-User"
"""The caller's user id (JWT ``sub``)."""
ROLE_HEADER: Final = "X-Stockflow-Role"
"""The caller's role (JWT ``role``): ``customer`` (the default) or ``staff``."""

Role = Literal["customer", "staff"]
ROLES: Final[tuple[Role, ...]] = ("customer", "staff")
