"""How edge's errors become problems: one table for the plain ones, and handlers for those
that carry headers (``WWW-Authenticate``, ``Retry-After``) or a downstream's own answer.

Downstream answers (the kit client's exception tree):

- a 4xx (the request was wrong there: 404 for another customer's order, 409, 412, 422 ...)
  is passed through as the downstream wrote it (its problem body, ``Retry-After``);
- except a 401/407: the downstream refused EDGE's service credential, a deployment fault the
  client cannot fix: 503, logged as an error;
- anything else (not reachable, breaker open, bulkhead full, timeout, 5xx): 503 with
  ``Retry-After`` (the breaker's time to its trial call when open, else 1 s). Never a 500.
"""

from __future__ import annotations

import math
from typing import Final

import httpx
import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from stockflow.edge.domain.identity import (
    AuthenticationError,
    ForbiddenError,
    RateLimitedError,
    VerifierUnavailableError,
)
from stockflow_kit.http import (
    DownstreamClientError,
    DownstreamError,
    DownstreamUnavailableError,
    ErrorTable,
    problem_response,
)
from stockflow_kit.http.bodies import BODY_ERRORS

__all__ = ["ERRORS", "InvalidHeaderError", "install_error_handlers", "passthrough"]


class InvalidHeaderError(Exception):
    """A header edge passes on is not printable ASCII of at most 200 characters (a 422)."""


ERRORS: Final = ErrorTable(
    {
        ForbiddenError: (403, "Forbidden", "forbidden"),
        InvalidHeaderError: (422, "Invalid header", "invalid-header"),
        **BODY_ERRORS,
    }
)

_PASSED_HEADERS: Final = ("Retry-After", "ETag", "Location", "Idempotent-Replayed")
_log = structlog.get_logger("stockflow.edge")


def passthrough(response: httpx.Response) -> Response:
    """A downstream's answer as edge's (status, body, media type, the headers that matter)."""
    headers = {name: response.headers[name] for name in _PASSED_HEADERS if name in response.headers}
    return Response(
        response.content,
        status_code=response.status_code,
        headers=headers,
        media_type=response.headers.get("content-type"),
    )


def _retry_after(seconds: float | None) -> str:
    return str(max(1, math.ceil(seconds))) if seconds is not None else "1"


def unavailable(request: Request, error: DownstreamError) -> Response:
    """The 503 for a downstream that could not answer."""
    reason = error.reason if isinstance(error, DownstreamUnavailableError) else type(error).__name__
    retry_after = error.retry_after if isinstance(error, DownstreamUnavailableError) else None
    if retry_after is None:
        retry_after = getattr(error, "retry_after", None)
    return problem_response(
        503,
        title="Downstream unavailable",
        type=ERRORS.type_uri("downstream-unavailable"),
        detail=f"the {error.downstream} service cannot answer now ({reason}); retry later",
        instance=request.url.path,
        headers={"Retry-After": _retry_after(retry_after)},
        extra={"downstream": error.downstream},
    )


def install_error_handlers(app: FastAPI) -> None:
    """The handlers of the module docstring on *app* (before it starts)."""

    async def authentication(request: Request, error: Exception) -> Response:
        return problem_response(
            401,
            title="Unauthorized",
            type=ERRORS.type_uri("unauthorized"),
            detail=str(error),
            instance=request.url.path,
            headers={"WWW-Authenticate": 'Bearer realm="stockflow"'},
        )

    async def rate_limited(request: Request, error: Exception) -> Response:
        assert isinstance(error, RateLimitedError)
        return problem_response(
            429,
            title="Too many requests",
            type=ERRORS.type_uri("rate-limited"),
            detail=str(error),
            instance=request.url.path,
            headers={"Retry-After": _retry_after(error.retry_after)},
        )

    async def verifier_unavailable(request: Request, error: Exception) -> Response:
        return problem_response(
            503,
            title="Cannot check tokens now",
            type=ERRORS.type_uri("verifier-unavailable"),
            detail=str(error),
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )

    async def downstream(request: Request, error: Exception) -> Response:
        assert isinstance(error, DownstreamError)
        if isinstance(error, DownstreamClientError):
            if error.status not in (401, 407):
                return passthrough(error.response)
            _log.error(
                "edge.service_credential_refused",
                downstream=error.downstream,
                status=error.status,
                action="give edge the deployment's STOCKFLOW_SERVICE_TOKEN",
            )
        return unavailable(request, error)

    app.add_exception_handler(AuthenticationError, authentication)
    app.add_exception_handler(RateLimitedError, rate_limited)
    app.add_exception_handler(VerifierUnavailableError, verifier_unavailable)
    app.add_exception_handler(DownstreamError, downstream)
