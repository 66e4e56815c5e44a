"""What edge's service layer needs from its adapters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from stockflow.edge.domain.audit import AuditRun
from stockflow.edge.domain.identity import Principal

__all__ = ["Auditor", "Downstreams", "RateLimiter", "TokenVerifier"]


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The caller a bearer token names.

        Raises:
            AuthenticationError: the token is malformed, expired, of an algorithm not
                accepted, badly signed, or its claims do not fit.
            VerifierUnavailableError: the keys to check it cannot be fetched now.
        """
        ...


class RateLimiter(Protocol):
    async def hit(self, client: str) -> None:
        """Count one request of *client*.

        Raises:
            RateLimitedError: over a limit (with the seconds until it would pass).
        """
        ...

    async def close(self) -> None: ...


class Downstreams(Protocol):
    async def request(
        self,
        downstream: str,
        method: str,
        path: str,
        *,
        principal: Principal,
        headers: Mapping[str, str],
        route: str,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """The 2xx answer (within *deadline* seconds when given, else the client's own) of *downstream* to a call made for *principal*.

        Raises:
            stockflow_kit.http.DownstreamError: any other outcome.
        """
        ...

    async def aclose(self) -> None: ...


class Auditor(Protocol):
    @property
    def configured(self) -> str | None:
        """``None`` when it can run, else what is missing (shown on the page)."""
        ...

    async def audit(self) -> AuditRun:
        """Run the auditor once; never raises for an audit that could not run (the run says
        why)."""
        ...
