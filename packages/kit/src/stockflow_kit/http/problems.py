"""RFC 9457 problem details, and the one error table per application that produces them.

Every error response of a kit-instrumented service is ``application/problem+json`` with
``type``, ``title``, ``status``, ``detail`` and ``correlation_id``, never a stack trace:

- :class:`Problem` and :func:`problem_response` build one;
- an :class:`ErrorTable` maps exception classes to a status, a title and a type slug, looked
  up along the exception's MRO, so a subclass maps like its base unless it has its own row;
- :func:`install_problem_handlers` makes a Starlette or FastAPI application answer with
  problems: unknown routes (404), wrong methods (405, ``Allow`` kept), invalid requests and
  malformed JSON (422 with a list of field errors), ``HTTPException`` (its status), mapped
  exceptions (their row) and anything else (500, logged once with the correlation id).

Why a middleware for the 500: Starlette sends exception handlers registered for
``Exception`` to its ``ServerErrorMiddleware``, which sits *outside* every user middleware,
so that response would miss the correlation header and the request metrics.
:class:`ProblemMiddleware` sits innermost instead, right around the routing, and turns any
exception into a response that flows back out through the kit's middleware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http.client import responses
from typing import Any, Final

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockflow_kit.http._problem import (
    ABOUT_BLANK,
    PROBLEM_MEDIA_TYPE,
    ErrorMapping,
    ErrorTable,
    Problem,
    problem_response,
    status_title,
)
from stockflow_kit.observability.correlation import get_correlation_id

__all__ = [
    "ABOUT_BLANK",
    "INTERNAL_ERROR_DETAIL",
    "PROBLEM_MEDIA_TYPE",
    "ErrorMapping",
    "ErrorTable",
    "Problem",
    "ProblemMiddleware",
    "http_exception_response",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
    "status_title",
    "validation_error_response",
]

INTERNAL_ERROR_DETAIL: Final = (
    "The server failed to handle this request. Quote the correlation_id when reporting it."
)
"""The ``detail`` of every 500 problem: the same text whatever went wrong."""

_DETAILS: Final = {
    404: "No resource exists at this path.",
    405: "This resource does not support the request method.",
}
_MAX_FIELD_ERRORS: Final = 50
_MAX_TEXT: Final = 200
_log = structlog.get_logger("stockflow_kit.http")


class ProblemMiddleware:
    """Pure ASGI middleware that turns exceptions into problem responses.

    Starlette ``HTTPException`` keeps its status, detail and headers; exceptions mapped by
    *table* become their row; a ``ClientDisconnect`` (the client hung up while its body was
    read; FastAPI wraps it in a 400 ``HTTPException``) ends the request without a response
    and without a log line of its own; any other exception becomes a 500 with
    :data:`INTERNAL_ERROR_DETAIL`, logged once (``http.unhandled_exception``, with
    ``exc_info`` and the correlation id) and not re-raised, so outer middleware sees an
    ordinary 500 response. If the response had already started, the exception is logged and
    re-raised, since nothing else can be sent.

    :func:`install_problem_handlers` adds it innermost; add it yourself only when you wire
    middleware by hand.

    Args:
        app: The ASGI application to wrap.
        table: Maps domain exceptions to problems; an empty table when ``None``.
    """

    def __init__(self, app: ASGIApp, *, table: ErrorTable | None = None) -> None:
        self.app = app
        self.table = ErrorTable() if table is None else table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if _is_client_disconnect(exc):
                return  # nobody to answer; the metrics middleware records a 499
            if started:
                _log_unhandled(scope, exc)
                raise
            response = self._response_for(exc, scope)
            await response(scope, receive, send)

    def _response_for(self, exc: Exception, scope: Scope) -> Response:
        instance = scope.get("path")
        leaf = _sole_exception(exc)
        if isinstance(leaf, HTTPException):
            return http_exception_response(leaf, instance=instance)
        problem = self.table.problem_for(leaf, instance=instance)
        if problem is not None:
            return problem.to_response()
        _log_unhandled(scope, exc)
        return internal_error_response(instance=instance)


def install_problem_handlers(app: Starlette, table: ErrorTable | None = None) -> None:
    """Make *app* answer every error with a problem response.

    Registers exception handlers for ``HTTPException`` (which Starlette raises for unknown
    routes and wrong methods) and, when FastAPI is installed, for its
    ``RequestValidationError`` (invalid fields and malformed JSON give 422 with an
    ``errors`` list of ``{loc, msg, type}``; input values are never echoed). Appends
    :class:`ProblemMiddleware` as the innermost middleware for mapped and unexpected
    exceptions, and registers a last-resort ``Exception`` handler for errors raised by
    middleware outside it. Call it before the application starts.

    Args:
        app: A Starlette or FastAPI application.
        table: The application's error table; an empty one when ``None`` (the default).
            Rows added to the table later still take effect.

    Raises:
        RuntimeError: The application has already started.
    """
    if app.middleware_stack is not None:
        msg = "install_problem_handlers() must be called before the application starts"
        raise RuntimeError(msg)
    errors = ErrorTable() if table is None else table

    async def handle_validation_error(request: Request, exc: Exception) -> Response:
        return validation_error_response(
            getattr(exc, "errors", list)(), table=errors, instance=request.url.path
        )

    app.add_exception_handler(HTTPException, _handle_http_exception)
    app.add_exception_handler(Exception, _handle_escaped_exception)
    try:
        from fastapi.exceptions import RequestValidationError
    except ModuleNotFoundError:  # pragma: no cover - Starlette without FastAPI
        pass
    else:
        app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.user_middleware.append(Middleware(ProblemMiddleware, table=errors))


def http_exception_response(exc: HTTPException, *, instance: str | None = None) -> Response:
    """Return the problem response for a Starlette (or FastAPI) ``HTTPException``.

    The status and headers (``Allow`` on a 405, ``WWW-Authenticate`` on a 401) are kept. A
    string detail other than the bare reason phrase becomes ``detail``; a structured detail
    (FastAPI allows any JSON value) goes into the ``context`` member.
    """
    detail: str | None = None
    extra: dict[str, object] = {}
    given: object = exc.detail  # typed str by Starlette, but any JSON value in FastAPI
    if not isinstance(given, str):
        extra["context"] = given
    elif not _is_reason_phrase(given, exc.status_code):
        detail = given
    return problem_response(
        exc.status_code,
        detail=detail or _DETAILS.get(exc.status_code),
        instance=instance,
        headers=exc.headers,
        extra=extra,
    )


def validation_error_response(
    errors: Sequence[Any], *, table: ErrorTable, instance: str | None = None
) -> Response:
    """Return the 422 problem for request validation *errors* (pydantic-style dicts).

    Only ``loc``, ``msg`` and ``type`` of the first 50 errors are kept, with texts cut to
    200 characters: the rejected input is never echoed.
    """
    malformed = any(isinstance(e, Mapping) and e.get("type") == "json_invalid" for e in errors)
    detail = (
        "The request body is not valid JSON."
        if malformed
        else f"The request has {len(errors)} invalid field(s)."
    )
    return Problem(
        status=422,
        title="Request validation failed",
        type=table.type_uri("validation-error"),
        detail=detail,
        instance=instance,
        extra={"errors": [_field_error(e) for e in errors[:_MAX_FIELD_ERRORS]]},
    ).to_response()


def internal_error_response(*, instance: str | None = None) -> Response:
    """Return the generic 500 problem, which says nothing about the cause."""
    return problem_response(500, detail=INTERNAL_ERROR_DETAIL, instance=instance)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    if isinstance(exc.__cause__, ClientDisconnect):
        # FastAPI's 400 for a body it could not read because the client hung up: there is
        # nobody to answer. Re-raised for ProblemMiddleware, which ends the request quietly.
        raise exc.__cause__
    if exc.status_code == 405:
        exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), **_allow(request)})
    return http_exception_response(exc, instance=request.url.path)


def _allow(request: Request) -> dict[str, str]:
    """``Allow`` with the methods of EVERY route of this path: Starlette's 405 names only the
    first route that matched the path, so ``GET /orders`` and ``POST /orders`` as two routes
    answered a ``DELETE`` with ``Allow: GET`` alone."""
    router = getattr(request.app, "router", None)
    methods: set[str] = set()
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return {"Allow": ", ".join(sorted(methods))} if methods else {}


async def _handle_escaped_exception(request: Request, exc: Exception) -> Response:
    # Only reached for exceptions raised outside ProblemMiddleware (in an outer middleware).
    _log_unhandled(request.scope, exc)
    return internal_error_response(instance=request.url.path)


def _log_unhandled(scope: Scope, exc: BaseException) -> None:
    _log.error(
        "http.unhandled_exception",
        method=scope.get("method"),
        path=scope.get("path"),
        error_type=type(exc).__qualname__,
        correlation_id=get_correlation_id(),
        exc_info=exc,
    )


def _is_client_disconnect(exc: Exception) -> bool:
    leaf = _sole_exception(exc)
    return isinstance(leaf, ClientDisconnect) or (
        isinstance(leaf, HTTPException) and isinstance(leaf.__cause__, ClientDisconnect)
    )


def _sole_exception(exc: Exception) -> Exception:
    # Task groups wrap a single failure in an ExceptionGroup; map the failure itself.
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _is_reason_phrase(detail: str, status: int) -> bool:
    # Starlette's default detail is the stdlib phrase, which differs from ours for 413/422.
    return detail in (status_title(status), responses.get(status, ""))


def _field_error(error: object) -> dict[str, object]:
    if not isinstance(error, Mapping):
        return {"loc": [], "msg": str(error)[:_MAX_TEXT], "type": "invalid"}
    loc = [p if isinstance(p, int) else str(p)[:_MAX_TEXT] for p in error.get("loc", ())]
    return {
        "loc": loc,
        "msg": str(error.get("msg", ""))[:_MAX_TEXT],
        "type": str(error.get("type", ""))[:_MAX_TEXT],
    }
