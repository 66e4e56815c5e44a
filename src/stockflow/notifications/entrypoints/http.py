"""The notifications HTTP API (internal: edge fronts it): in-app notifications and webhooks.

Every route needs the service credential; the caller's identity comes in
:data:`~stockflow.contracts.identity.USER_HEADER` / ``ROLE_HEADER``, set by edge from the
verified JWT. ``GET /notifications`` lists the caller's own (anyone's id in a cursor that is
not theirs is a 404); the webhook routes are for staff (403 otherwise). A webhook URL that
breaks the SSRF rules is a 422 ``webhook-target-refused`` problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathRule
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.identity import USER_HEADER
from stockflow.contracts.inventory import MAX_SKU_LENGTH, SKU_PATTERN
from stockflow.contracts.notifications import (
    DeliveriesPage,
    DeliveryAttemptView,
    DeliveryView,
    NotificationsPage,
    NotificationView,
    WebhookCreated,
    WebhookRequest,
    WebhookView,
)
from stockflow.notifications.domain.model import Attempt, Delivery, Notification, Webhook
from stockflow.notifications.entrypoints.http_errors import (
    ERRORS,
    InvalidCallerError,
    InvalidCursorError,
)
from stockflow.notifications.service_layer.handlers import (
    Caller,
    NotificationHandlers,
    UnknownWebhookError,
)
from stockflow.notifications.service_layer.ports import PageCursor, Queries
from stockflow.notifications.settings import NotificationsSettings
from stockflow.platform.identity import IDENTITY_PARAMETERS, InvalidIdentityError, read_identity
from stockflow.platform.internal_app import internal_app
from stockflow_kit.http.bodies import decode_json, json_response
from stockflow_kit.http.openapi import (
    json_body,
    json_schema,
    problem_responses,
)

__all__ = ["caller_of", "create_app", "delivery_view", "notification_view"]

IdPath = Annotated[
    str,
    PathRule(
        min_length=1,
        max_length=MAX_SKU_LENGTH,
        pattern=SKU_PATTERN,
        description="An id (letters, digits and ._:-, 1 to 100).",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_SKU_LENGTH,
        pattern=SKU_PATTERN,
        description="The `next` of the previous page.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _maybe(at: float | None) -> str | None:
    return None if at is None else _rfc3339(at)


def notification_view(note: Notification) -> NotificationView:
    return NotificationView(
        id=note.id,
        user_id=note.user_id,
        type=note.type,
        message=note.message,
        created_at=_rfc3339(note.created_at),
        order_id=note.order_id,
        correlation_id=note.correlation_id,
    )


def webhook_view(webhook: Webhook) -> WebhookView:
    return WebhookView(
        id=webhook.id,
        url=webhook.url,
        events=list(webhook.events),
        created_at=_rfc3339(webhook.created_at),
    )


def attempt_view(attempt: Attempt) -> DeliveryAttemptView:
    return DeliveryAttemptView(
        attempt=attempt.number,
        at=_rfc3339(attempt.at),
        duration_ms=round(attempt.duration * 1000, 3),
        status=attempt.status,
        error=attempt.error,
        next_attempt_at=_maybe(attempt.next_attempt_at),
    )


def delivery_view(delivery: Delivery, attempts: Sequence[Attempt] = ()) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        event_type=delivery.event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        created_at=_rfc3339(delivery.created_at),
        updated_at=_rfc3339(delivery.updated_at),
        next_attempt_at=None if delivery.settled else _maybe(delivery.next_attempt_at),
        attempt_log=[attempt_view(a) for a in attempts],
    )


def caller_of(request: Request) -> Caller:
    """The identity edge forwarded. Raises :class:`InvalidCallerError` when malformed."""
    try:
        user, role = read_identity(request.headers)
    except InvalidIdentityError as error:
        raise InvalidCallerError(str(error)) from None
    return Caller(user, role)


def create_app(
    *,
    handlers: NotificationHandlers,
    queries: Queries,
    settings: NotificationsSettings,
    readiness: Callable[[], Awaitable[str | None]],
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The notifications ASGI app. ``readiness()`` returns ``None`` when ready, else why not."""
    app, require_service = internal_app(
        "notifications",
        settings,
        errors=ERRORS,
        readiness=readiness,
        protected=["/notifications", "/webhooks"],
        registry=registry,
    )
    identity = IDENTITY_PARAMETERS

    def content(kind: Any) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": json_schema(kind)}}}

    @app.get(
        "/notifications",
        tags=["notifications"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={200: content(NotificationsPage), **problem_responses(401, 404, 422)},
    )
    async def list_notifications(
        request: Request, cursor: Cursor = None, limit: Limit = 50
    ) -> Response:
        caller = caller_of(request)
        if caller.user_id is None:
            raise InvalidCallerError(f"notifications are a user's own: send {USER_HEADER}")
        after = None
        if cursor is not None:
            last = await queries.notification(cursor)
            if last is None or last.user_id != caller.user_id:
                raise InvalidCursorError(f"the cursor names no notification: {cursor!r}")
            after = PageCursor(last.created_at, last.id)
        size = min(limit, settings.page_limit)
        page = list(
            await queries.notifications(user_id=caller.user_id, after=after, limit=size + 1)
        )
        shown = page[:size]
        more = len(page) > size
        return json_response(
            NotificationsPage(
                notifications=[notification_view(n) for n in shown],
                next=shown[-1].id if more and shown else None,
            )
        )

    @app.post(
        "/webhooks",
        status_code=201,
        tags=["webhooks"],
        dependencies=require_service,
        openapi_extra=json_body(WebhookRequest, headers=identity),
        responses={201: content(WebhookCreated), **problem_responses(401, 403, 413, 415, 422)},
    )
    async def subscribe(request: Request) -> Response:
        caller = caller_of(request)
        caller.require_staff()
        wanted = decode_json(request, await request.body(), WebhookRequest)
        webhook = await handlers.subscribe(caller, wanted.url, wanted.events)
        created = WebhookCreated(
            id=webhook.id,
            url=webhook.url,
            events=list(webhook.events),
            created_at=_rfc3339(webhook.created_at),
            secret=webhook.secret,
        )
        return json_response(created, status=201)

    @app.get(
        "/webhooks",
        tags=["webhooks"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={
            200: {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "webhooks": {"type": "array", "items": json_schema(WebhookView)}
                            },
                            "required": ["webhooks"],
                        }
                    }
                }
            },
            **problem_responses(401, 403, 422),
        },
    )
    async def list_webhooks(request: Request) -> Response:
        caller_of(request).require_staff()
        webhooks = await queries.webhooks()
        return json_response({"webhooks": [webhook_view(w) for w in webhooks]})

    @app.delete(
        "/webhooks/{webhook_id}",
        status_code=204,
        tags=["webhooks"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={204: {"description": "Deleted"}, **problem_responses(401, 403, 404, 422)},
    )
    async def unsubscribe(webhook_id: IdPath, request: Request) -> Response:
        await handlers.unsubscribe(caller_of(request), webhook_id)
        return Response(status_code=204)

    @app.get(
        "/webhooks/{webhook_id}/deliveries",
        tags=["webhooks"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={200: content(DeliveriesPage), **problem_responses(401, 403, 404, 422)},
    )
    async def deliveries(
        webhook_id: IdPath, request: Request, cursor: Cursor = None, limit: Limit = 50
    ) -> Response:
        caller_of(request).require_staff()
        if await queries.webhook(webhook_id) is None:
            raise UnknownWebhookError(f"no webhook {webhook_id!r}")
        after = None
        if cursor is not None:
            last = await queries.delivery(cursor)
            if last is None or last.webhook_id != webhook_id:
                raise InvalidCursorError(f"the cursor names no delivery: {cursor!r}")
            after = PageCursor(last.created_at, last.id)
        size = min(limit, settings.page_limit)
        page = list(await queries.deliveries(webhook_id=webhook_id, after=after, limit=size + 1))
        shown = page[:size]
        attempts = await queries.attempts([d.id for d in shown])
        return json_response(
            DeliveriesPage(
                deliveries=[delivery_view(d, attempts.get(d.id, ())) for d in shown],
                next=shown[-1].id if len(page) > size and shown else None,
            )
        )

    return app
