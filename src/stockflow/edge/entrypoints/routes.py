"""Edge's inventory, orders and notifications routes: check the caller's role and the input,
then forward to the owning service (answers pass through; see :mod:`.http_errors`)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathRule
from starlette.responses import Response

from stockflow.contracts.inventory import (
    MAX_SKU_LENGTH,
    SKU_PATTERN,
    AdjustmentRequest,
    ReceiptRequest,
    StockView,
)
from stockflow.contracts.orders import (
    ORDER_LINKS,
    ORDER_OPERATIONS,
    PLACED_ORDER_LINKS,
    OrdersPage,
    OrderView,
    PlacedOrder,
    PlaceOrderRequest,
)
from stockflow.edge.entrypoints.forwarding import Caller, Forwarder, segment
from stockflow.edge.entrypoints.notification_routes import add_notification_routes
from stockflow.edge.entrypoints.openapi_docs import answers, json_answer
from stockflow_kit.http.bodies import decode_json
from stockflow_kit.http.openapi import idempotency_header, json_body

__all__ = ["add_routes"]

_ID_RULE: Final = {
    "min_length": 1,
    "max_length": MAX_SKU_LENGTH,
    "pattern": SKU_PATTERN,
}
Sku = Annotated[str, PathRule(description="Letters, digits and ._:- (1 to 100).", **_ID_RULE)]
OrderId = Annotated[str, PathRule(description="An order id (the SKU rule).", **_ID_RULE)]
Cursor = Annotated[str | None, Query(description="The `next` of the previous page.", **_ID_RULE)]
Limit = Annotated[int, Query(ge=1, le=1000)]
_ANY_JSON: Final[dict[str, Any]] = {
    "description": "OK",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def add_routes(app: FastAPI, forwarder: Forwarder) -> None:
    """The inventory, orders and notifications routes of the API.md table on *app*."""
    _inventory(app, forwarder)
    _orders(app, forwarder)
    add_notification_routes(app, forwarder)


def _inventory(app: FastAPI, forwarder: Forwarder) -> None:
    stock = json_answer(StockView)
    writes = answers(
        {201: stock, 200: {**stock, "description": "A replay: the stock now"}},
        400,
        404,
        409,
        413,
        415,
        421,
        422,
    )

    @app.get("/inventory/{sku}", tags=["inventory"], responses=answers({200: stock}, 404, 422))
    async def get_stock(sku: Sku, principal: Caller, request: Request) -> Response:
        return await forwarder.forward(
            "inventory",
            "GET",
            f"/inventory/{segment(sku)}",
            principal=principal,
            request=request,
            route="/inventory/{sku}",
        )

    @app.post(
        "/inventory/{sku}/receipts",
        status_code=201,
        tags=["inventory"],
        openapi_extra=json_body(ReceiptRequest, headers=[idempotency_header()]),
        responses=writes,
    )
    async def receive(sku: Sku, principal: Caller, request: Request) -> Response:
        principal.require_staff("receive stock")
        body = await request.body()
        decode_json(request, body, ReceiptRequest)
        return await forwarder.forward(
            "inventory",
            "POST",
            f"/inventory/{segment(sku)}/receipts",
            principal=principal,
            request=request,
            route="/inventory/{sku}/receipts",
            content=body,
        )

    @app.post(
        "/inventory/{sku}/adjustments",
        status_code=201,
        tags=["inventory"],
        openapi_extra=json_body(AdjustmentRequest, headers=[idempotency_header()]),
        responses=writes,
    )
    async def adjust(sku: Sku, principal: Caller, request: Request) -> Response:
        principal.require_staff("adjust stock")
        body = await request.body()
        decode_json(request, body, AdjustmentRequest)
        return await forwarder.forward(
            "inventory",
            "POST",
            f"/inventory/{segment(sku)}/adjustments",
            principal=principal,
            request=request,
            route="/inventory/{sku}/adjustments",
            content=body,
        )

    @app.get(
        "/inventory/{sku}/events", tags=["inventory"], responses=answers({200: _ANY_JSON}, 404, 422)
    )
    async def get_events(
        sku: Sku,
        principal: Caller,
        request: Request,
        after: Annotated[
            int, Query(ge=0, le=2**63 - 1, description="Sequence to start after.")
        ] = 0,
        limit: Limit = 100,
    ) -> Response:
        principal.require_staff("read the event streams")
        return await forwarder.forward(
            "inventory",
            "GET",
            f"/inventory/{segment(sku)}/events",
            principal=principal,
            request=request,
            route="/inventory/{sku}/events",
            params={"after": after, "limit": limit},
        )


def _orders(app: FastAPI, forwarder: Forwarder) -> None:
    order = json_answer(OrderView)

    @app.post(
        "/orders",
        status_code=202,
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["place"],
        openapi_extra=json_body(PlaceOrderRequest, headers=[idempotency_header(required=True)]),
        responses=answers(
            {202: {**json_answer(PlacedOrder), "links": PLACED_ORDER_LINKS}},
            400,
            409,
            413,
            415,
            422,
            428,
        ),
    )
    async def place(principal: Caller, request: Request) -> Response:
        principal.require_customer("place orders")
        body = await request.body()
        decode_json(request, body, PlaceOrderRequest)
        return await forwarder.forward(
            "orders",
            "POST",
            "/orders",
            principal=principal,
            request=request,
            route="/orders",
            content=body,
        )

    @app.get(
        "/orders/{order_id}",
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["get"],
        responses=answers({200: {**order, "links": ORDER_LINKS}}, 404, 422),
    )
    async def get_order(order_id: OrderId, principal: Caller, request: Request) -> Response:
        return await forwarder.forward(
            "orders",
            "GET",
            f"/orders/{segment(order_id)}",
            principal=principal,
            request=request,
            route="/orders/{order_id}",
        )

    @app.get(
        "/orders",
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["list"],
        responses=answers({200: json_answer(OrdersPage)}, 404, 422),
    )
    async def list_orders(
        principal: Caller,
        request: Request,
        cursor: Cursor = None,
        limit: Limit = 50,
        customer: Annotated[
            str | None,
            Query(min_length=1, max_length=200, description="Staff only: one customer's."),
        ] = None,
    ) -> Response:
        params = {
            "cursor": cursor,
            "limit": limit,
            "customer": customer if principal.staff else None,
        }
        return await forwarder.forward(
            "orders",
            "GET",
            "/orders",
            principal=principal,
            request=request,
            route="/orders",
            params=params,
        )

    transition = answers({200: order}, 404, 409, 422)

    @app.post(
        "/orders/{order_id}/cancel",
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["cancel"],
        responses=transition,
    )
    async def cancel(order_id: OrderId, principal: Caller, request: Request) -> Response:
        return await forwarder.forward(
            "orders",
            "POST",
            f"/orders/{segment(order_id)}/cancel",
            principal=principal,
            request=request,
            route="/orders/{order_id}/cancel",
        )

    @app.post(
        "/orders/{order_id}/ship",
        tags=["orders"],
        operation_id=ORDER_OPERATIONS["ship"],
        responses=transition,
    )
    async def ship(order_id: OrderId, principal: Caller, request: Request) -> Response:
        principal.require_staff("ship orders")
        return await forwarder.forward(
            "orders",
            "POST",
            f"/orders/{segment(order_id)}/ship",
            principal=principal,
            request=request,
            route="/orders/{order_id}/ship",
        )
