"""Who is calling edge, and the errors of deciding it (pure: no library, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from stockflow.contracts.identity import Role

__all__ = [
    "AuthenticationError",
    "ForbiddenError",
    "Principal",
    "RateLimitedError",
    "VerifierUnavailableError",
]


@dataclass(frozen=True)
class Principal:
    """The verified caller: the token's ``sub`` and ``role``."""

    user_id: str
    role: Role

    @property
    def staff(self) -> bool:
        return self.role == "staff"

    def require_staff(self, action: str) -> None:
        """Raises :class:`ForbiddenError` unless the caller is staff."""
        if not self.staff:
            raise ForbiddenError(f"only staff may {action}")

    def require_customer(self, action: str) -> None:
        """Raises :class:`ForbiddenError` unless the caller is a customer."""
        if self.staff:
            raise ForbiddenError(f"only customers may {action}")


class AuthenticationError(Exception):
    """No token, or one that is not valid (a 401 with ``WWW-Authenticate: Bearer``)."""


class ForbiddenError(Exception):
    """A valid token whose role may not do this (a 403)."""


class VerifierUnavailableError(Exception):
    """Tokens cannot be checked now (the JWKS cannot be fetched): a 503, not the caller's fault."""


class RateLimitedError(Exception):
    """The client made too many requests (a 429 with ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
