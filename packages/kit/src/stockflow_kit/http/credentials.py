"""The service credential on internal routes, and the probe routes every service serves.

Internal routes (``/internal/*``) are called by other services only: they must carry
``Authorization: Bearer <service credential>``. The scheme is case-insensitive (RFC 9110:
``bearer`` is as good as ``Bearer``); the token is compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stockflow_kit.http._problem import problem_response

__all__ = [
    "NotReadyError",
    "ServiceCredentialError",
    "accepts_credential",
    "bearer_token",
    "probe_routes",
    "service_credential",
]

_SCHEME: Final = "bearer"


class ServiceCredentialError(Exception):
    """The call lacks a valid service credential (a 401 problem)."""


class NotReadyError(Exception):
    """The service is not ready (a 503 problem; the detail says why)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (any case of the scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != _SCHEME:
        return None
    token = token.strip()
    return token or None


def accepts_credential(authorization: str | None, expected: bytes | None) -> bool:
    """Whether an ``Authorization`` header value presents the credential *expected*.

    ``False`` when nothing is expected (no credential configured), the header is missing or
    of another scheme; the token is compared in constant time.
    """
    given = bearer_token(authorization)
    return (
        expected is not None and given is not None and hmac.compare_digest(given.encode(), expected)
    )


def service_credential(token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency requiring the service credential *token*.

    With ``token=None`` no credential is configured and every call is refused: an internal
    route is never open by accident. It is a coroutine function on purpose: FastAPI runs a
    plain ``def`` dependency in its thread pool, a thread hop on every request for a check
    that takes a microsecond.

    Raises:
        ServiceCredentialError: the header is missing, of another scheme, or wrong.
    """
    expected = None if token is None else token.encode()

    async def require(request: Request) -> None:
        if not accepts_credential(request.headers.get("authorization"), expected):
            raise ServiceCredentialError("this endpoint needs a valid service credential")

    return require


def probe_routes(readiness: Callable[[], Awaitable[str | None]]) -> list[Route]:
    """``GET /healthz`` (the process answers) and ``GET /readyz`` (``readiness()`` is ``None``;
    else a 503 problem whose detail is the reason)."""

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        reason = await readiness()
        if reason is not None:
            return problem_response(
                503, title="Not ready", detail=reason, instance=request.url.path
            )
        return JSONResponse({"status": "ready"})

    return [
        Route("/healthz", healthz, methods=["GET"], include_in_schema=True),
        Route("/readyz", readyz, methods=["GET"], include_in_schema=True),
    ]
