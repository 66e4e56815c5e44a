"""The live console: ``GET /`` (the page), ``GET /console/{file}`` (its script and style,
package data next to this module) and ``GET /console/stream`` (server-sent events, one
``snapshot`` event per gather of the shared :class:`ConsoleFeed`).

Anyone may watch the public view (health, RED, breakers, backlogs); a staff token (``?token=``,
since ``EventSource`` cannot send headers, or ``Authorization: Bearer``) adds orders, stock and
dead letters. A bad token is a 401; a customer's token gets the public view.

``POST /console/audit`` (staff, ``Authorization: Bearer``) starts ``stockflow audit`` in the
background: 202 (started, or one was running: its result will show), 401/403 for others, 503
when edge has no store to audit. The verdict arrives with the next snapshots.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from stockflow.edge.entrypoints.http_errors import ERRORS
from stockflow.edge.service_layer.console_audit import AuditStart, ConsoleAudit
from stockflow.edge.service_layer.console_feed import ConsoleFeed
from stockflow.edge.service_layer.gate import Gate
from stockflow_kit.http import problem_response

__all__ = ["console_routes"]

_STATIC: Final = files("stockflow.edge.entrypoints") / "console_static"
_TYPES: Final = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
_HEADERS: Final = {"Cache-Control": "no-cache"}


async def page(_request: Request) -> HTMLResponse:
    return HTMLResponse((_STATIC / "console.html").read_text("utf-8"), headers=_HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _TYPES:
        return Response(status_code=404)
    body = (_STATIC / name).read_text("utf-8")
    return Response(body, media_type=_TYPES[name], headers=_HEADERS)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.query_params.get("token") or None


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def console_routes(feed: ConsoleFeed, audit: ConsoleAudit) -> list[Route]:
    async def stream(request: Request) -> Response:
        token = _token(request)
        staff = False
        if token is not None:
            gate: Gate = request.app.state.gate
            # A bad token is the gate's 401 problem (its error handlers), as on every route.
            staff = (await gate.admit(token, address=_address(request))).staff

        async def events() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            async for view in feed.updates(staff=staff):
                if await request.is_disconnected():
                    return
                yield f"event: snapshot\ndata: {json.dumps(view, separators=(',', ':'))}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={**_HEADERS, "X-Accel-Buffering": "no"},
        )

    async def run_audit(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() or None if header.lower().startswith("bearer ") else None
        gate: Gate = request.app.state.gate
        principal = await gate.admit(token, address=_address(request))
        principal.require_staff("run the audit")
        started = audit.start(by=principal.user_id)
        if started is AuditStart.UNCONFIGURED:
            return problem_response(
                503,
                title="Audit unavailable",
                type=ERRORS.type_uri("audit-unavailable"),
                detail=str(audit.public_json()["unavailable"]),
                instance=request.url.path,
            )
        return JSONResponse({"audit": started.value}, status_code=202, headers=_HEADERS)

    return [
        Route("/", page, methods=["GET"], include_in_schema=False),
        Route("/console/stream", stream, methods=["GET"], include_in_schema=False),
        Route("/console/audit", run_audit, methods=["POST"], include_in_schema=False),
        Route("/console/{name}", asset, methods=["GET"], include_in_schema=False),
    ]
