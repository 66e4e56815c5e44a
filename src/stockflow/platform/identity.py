"""The caller's identity on an internal route: the headers edge sets from the verified JWT
(:mod:`stockflow.contracts.identity`), read and checked in one place for every service.

Services trust them only behind the service credential (``service_credential``); each maps
:class:`InvalidIdentityError` to its 422 problem and builds its own ``Caller`` from
:func:`read_identity`. :data:`IDENTITY_PARAMETERS` documents the headers in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from stockflow.contracts.identity import ROLE_HEADER, ROLES, USER_HEADER, Role

__all__ = ["IDENTITY_PARAMETERS", "InvalidIdentityError", "read_identity"]

IDENTITY_PARAMETERS: Final[list[dict[str, Any]]] = [
    {"name": USER_HEADER, "in": "header", "required": False, "schema": {"type": "string"}},
    {
        "name": ROLE_HEADER,
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": list(ROLES)},
    },
]
"""The identity headers as OpenAPI parameters (``openapi_extra={"parameters": …}``)."""


class InvalidIdentityError(ValueError):
    """The identity headers are malformed (the message says which and how)."""


def read_identity(headers: Mapping[str, str]) -> tuple[str | None, Role]:
    """The caller's user id (``None`` only for staff) and role, from *headers*.

    Raises:
        InvalidIdentityError: an unknown role, a user id of the wrong length, or a customer
            without a user id.
    """
    user = headers.get(USER_HEADER)
    role = headers.get(ROLE_HEADER, "customer")
    if role not in ROLES:
        raise InvalidIdentityError(f"{ROLE_HEADER} must be 'customer' or 'staff', not {role!r}")
    if user is not None and not 1 <= len(user) <= 200:
        raise InvalidIdentityError(f"{USER_HEADER} must be 1 to 200 characters")
    if user is None and role != "staff":
        raise InvalidIdentityError(f"a customer's request needs the {USER_HEADER} header")
    return user, role
