"""The orders HTTP API (internal: edge fronts it): place, read, list, cancel and ship orders.

Every route needs the service credential; the caller's identity comes in
:data:`~stockflow.contracts.orders.USER_HEADER` / ``ROLE_HEADER``, set by edge from the
verified JWT. A customer sees only their own orders (another's id is a 404, never the data);
staff see all and alone may ship. ``POST /orders`` requires an ``Idempotency-Key``: the order
id is derived from it (per customer), and the 202 answer is stored in the transaction that
stores the order, so a replay is answered the same, and another body with the key is a 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathRule
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.inventory import MAX_SKU_LENGTH, SKU_PATTERN
from stockflow.contracts.orders import (
    ORDER_LINKS,
    ORDER_OPERATIONS,
    PLACED_ORDER_LINKS,
    USER_HEADER,
    OrderLine,
    OrdersPage,
    OrderView,
    PlacedOrder,
    PlaceOrderRequest,
)
from stockflow.orders.domain.model import Order
from stockflow.orders.entrypoints.http_errors import ERRORS, InvalidCallerError
from stockflow.orders.service_layer.handlers import Caller, OrderHandlers, UnknownOrderError
from stockflow.orders.service_layer.ports import OrderQueries, PageCursor
from stockflow.orders.settings import OrdersSettings
from stockflow.platform.identity import IDENTITY_PARAMETERS, InvalidIdentityError, read_identity
from stockflow.platform.internal_app import internal_app
from stockflow_kit.http import Handled, Idempotency, IdempotencyContext, IdempotencyStore
from stockflow_kit.http.bodies import decode_json, json_response
from stockflow_kit.http.openapi import (
    idempotency_header,
    json_body,
    json_schema,
    problem_responses,
)
from stockflow_kit.observability import get_correlation_id

__all__ = ["create_app", "order_view"]

OrderIdPath = Annotated[
    str,
    PathRule(
        min_length=1,
        max_length=MAX_SKU_LENGTH,
        pattern=SKU_PATTERN,
        description="An order id (the SKU rule: letters, digits and ._:-, 1 to 100).",
    ),
]


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order_view(order: Order) -> OrderView:
    return OrderView(
        id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        lines=[OrderLine(sku=sku, qty=qty) for sku, qty in order.lines],
        created_at=_rfc3339(order.created_at),
        updated_at=_rfc3339(order.updated_at),
        reason=order.reason,
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
    handlers: OrderHandlers,
    queries: OrderQueries,
    answers: IdempotencyStore,
    settings: OrdersSettings,
    readiness: Callable[[], Awaitable[str | None]],
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The orders ASGI app. ``readiness()`` returns ``None`` when ready, else why not."""
    app, require_service = internal_app(
        "orders",
        settings,
        errors=ERRORS,
        readiness=readiness,
        protected=["/orders"],
        registry=registry,
    )
    # Keys are scoped per customer: two customers' equal keys never meet.
    keys = Idempotency(answers, caller=lambda request: caller_of(request).user_id or "staff")
    identity = IDENTITY_PARAMETERS
    order_json = {"content": {"application/json": {"schema": json_schema(OrderView)}}}

    @app.post(
        "/orders",
        status_code=202,
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["place"],
        dependencies=require_service,
        openapi_extra=json_body(
            PlaceOrderRequest, headers=[idempotency_header(required=True), *identity]
        ),
        responses={
            202: {
                "content": {"application/json": {"schema": json_schema(PlacedOrder)}},
                "links": PLACED_ORDER_LINKS,
            },
            **problem_responses(400, 401, 409, 413, 415, 422, 503),
        },
    )
    async def place(request: Request) -> Response:
        caller = caller_of(request)
        if caller.user_id is None:
            raise InvalidCallerError(f"an order is placed for a customer: send {USER_HEADER}")
        customer = caller.user_id
        body = await request.body()
        placed = decode_json(request, body, PlaceOrderRequest)
        lines = tuple((line.sku, line.qty) for line in placed.lines)

        async def apply(ctx: IdempotencyContext | None) -> Handled:
            assert ctx is not None  # the key is required

            def answer(order: Order) -> tuple[int, bytes]:
                return 202, msgspec.json.encode(PlacedOrder(id=order.id, status=order.status))

            placement = await handlers.place(
                ctx.message_id,
                customer,
                lines,
                answer=lambda order: ctx.record(*answer(order)),
                correlation_id=get_correlation_id(),
            )
            if placement.order is None:
                return Handled(202, b"", duplicate=True)
            return Handled(*answer(placement.order), recorded=True)

        return await keys.handle(request, body, apply, required=True)

    @app.get(
        "/orders/{order_id}",
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["get"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={200: {**order_json, "links": ORDER_LINKS}, **problem_responses(401, 404, 422)},
    )
    async def get_order(order_id: OrderIdPath, request: Request) -> Response:
        caller = caller_of(request)
        order = await queries.get(order_id)
        if order is None or not caller.may_see(order):
            raise UnknownOrderError(f"no order {order_id!r}")
        return json_response(order_view(order))

    @app.get(
        "/orders",
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["list"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={
            200: {"content": {"application/json": {"schema": json_schema(OrdersPage)}}},
            **problem_responses(401, 404, 422),
        },
    )
    async def list_orders(
        request: Request,
        customer: Annotated[
            str | None,
            Query(min_length=1, max_length=200, description="Staff only: one customer's."),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_SKU_LENGTH,
                pattern=SKU_PATTERN,
                description="The `next` of the previous page: the id of its last order.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Response:
        caller = caller_of(request)
        owner = customer if caller.staff else caller.user_id
        after = None
        if cursor is not None:
            last = await queries.get(cursor)
            if last is None or not caller.may_see(last):
                raise UnknownOrderError(f"the cursor names no order: {cursor!r}")
            after = PageCursor(last.created_at, last.id)
        size = min(limit, settings.page_limit)
        page = await queries.page(customer_id=owner, after=after, limit=size + 1)
        orders = list(page[:size])
        more = len(page) > size
        return json_response(
            OrdersPage(
                orders=[order_view(o) for o in orders],
                next=orders[-1].id if more and orders else None,
            )
        )

    transition = {
        "tags": ["orders"],
        "dependencies": require_service,
        "openapi_extra": {"parameters": identity},
        "responses": {200: order_json, **problem_responses(401, 403, 404, 409, 422, 503)},
    }

    @app.post(
        "/orders/{order_id}/cancel",
        operation_id=ORDER_OPERATIONS["cancel"],
        **transition,  # type: ignore[arg-type]
    )
    async def cancel(order_id: OrderIdPath, request: Request) -> Response:
        order = await handlers.cancel(
            order_id, caller_of(request), correlation_id=get_correlation_id()
        )
        return json_response(order_view(order))

    @app.post(
        "/orders/{order_id}/ship",
        operation_id=ORDER_OPERATIONS["ship"],
        **transition,  # type: ignore[arg-type]
    )
    async def ship(order_id: OrderIdPath, request: Request) -> Response:
        order = await handlers.ship(
            order_id, caller_of(request), correlation_id=get_correlation_id()
        )
        return json_response(order_view(order))

    return app
