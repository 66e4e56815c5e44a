"""Edge's notifications and webhooks routes (forwarded to notifications; webhooks are staff's)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathRule
from starlette.responses import Response

from stockflow.contracts.inventory import MAX_SKU_LENGTH, SKU_PATTERN
from stockflow.contracts.notifications import (
    NotificationsPage,
    WebhookCreated,
    WebhookRequest,
)
from stockflow.edge.entrypoints.forwarding import Caller, Forwarder, segment
from stockflow.edge.entrypoints.openapi_docs import answers, json_answer
from stockflow_kit.http.bodies import decode_json
from stockflow_kit.http.openapi import json_body

__all__ = ["add_notification_routes"]

_ID_RULE: Final = {"min_length": 1, "max_length": MAX_SKU_LENGTH, "pattern": SKU_PATTERN}
WebhookId = Annotated[str, PathRule(description="A webhook id.", **_ID_RULE)]
Cursor = Annotated[str | None, Query(description="The `next` of the previous page.", **_ID_RULE)]
Limit = Annotated[int, Query(ge=1, le=1000)]
_ANY_JSON: Final[dict[str, Any]] = {
    "description": "OK",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def add_notification_routes(app: FastAPI, forwarder: Forwarder) -> None:
    """``GET /notifications`` and the staff's webhook routes on *app*."""

    @app.get(
        "/notifications",
        tags=["notifications"],
        responses=answers({200: json_answer(NotificationsPage)}, 404, 422),
    )
    async def notifications(
        principal: Caller, request: Request, cursor: Cursor = None, limit: Limit = 50
    ) -> Response:
        return await forwarder.forward(
            "notifications",
            "GET",
            "/notifications",
            principal=principal,
            request=request,
            route="/notifications",
            params={"cursor": cursor, "limit": limit},
        )

    @app.post(
        "/webhooks",
        status_code=201,
        tags=["notifications"],
        openapi_extra=json_body(WebhookRequest),
        responses=answers({201: json_answer(WebhookCreated)}, 400, 409, 413, 415, 422),
    )
    async def subscribe(principal: Caller, request: Request) -> Response:
        principal.require_staff("subscribe webhooks")
        body = await request.body()
        decode_json(request, body, WebhookRequest)
        return await forwarder.forward(
            "notifications",
            "POST",
            "/webhooks",
            principal=principal,
            request=request,
            route="/webhooks",
            content=body,
        )

    @app.get("/webhooks", tags=["notifications"], responses=answers({200: _ANY_JSON}, 422))
    async def webhooks(principal: Caller, request: Request) -> Response:
        principal.require_staff("list webhooks")
        return await forwarder.forward(
            "notifications",
            "GET",
            "/webhooks",
            principal=principal,
            request=request,
            route="/webhooks",
        )

    @app.delete(
        "/webhooks/{webhook_id}",
        status_code=204,
        tags=["notifications"],
        responses=answers({204: {"description": "Deleted"}}, 404, 422),
    )
    async def unsubscribe(webhook_id: WebhookId, principal: Caller, request: Request) -> Response:
        principal.require_staff("delete webhooks")
        return await forwarder.forward(
            "notifications",
            "DELETE",
            f"/webhooks/{segment(webhook_id)}",
            principal=principal,
            request=request,
            route="/webhooks/{webhook_id}",
        )

    @app.get(
        "/webhooks/{webhook_id}/deliveries",
        tags=["notifications"],
        responses=answers({200: _ANY_JSON}, 404, 422),
    )
    async def deliveries(
        webhook_id: WebhookId,
        principal: Caller,
        request: Request,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Response:
        principal.require_staff("read webhook deliveries")
        return await forwarder.forward(
            "notifications",
            "GET",
            f"/webhooks/{segment(webhook_id)}/deliveries",
            principal=principal,
            request=request,
            route="/webhooks/{webhook_id}/deliveries",
            params={"cursor": cursor, "limit": limit},
        )
