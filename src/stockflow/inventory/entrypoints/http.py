"""The inventory's HTTP API: stock reads, receipts, adjustments and the internal reservations.

Routes translate HTTP into commands for the writer (the same one the bus feeds, so HTTP
commands are batched with bus commands) and nothing more. Bodies are decoded by msgspec
against the published DTOs; every error becomes problem+json through ONE table (:data:`ERRORS`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.inventory import (
    MAX_QUANTITY,
    AdjustmentRequest,
    ReceiptRequest,
    StockView,
)
from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    ReceiveStock,
)
from stockflow.inventory.entrypoints.http_io import (
    ERRORS,
    MAX_SEQUENCE,
    EventsPage,
    EventView,
    Sku,
    UnknownSkuError,
    decode,
    json_response,
    view,
)
from stockflow.inventory.entrypoints.internal_http import add_internal_routes
from stockflow.inventory.entrypoints.stock_read import StockReadRoute
from stockflow.inventory.service_layer.batch import Outcome
from stockflow.inventory.service_layer.ports import (
    EventStore,
    StockRow,
)
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow.inventory.service_layer.writer import (
    InventoryWriter,
    PartitionNotOwnedError,
)
from stockflow.platform.internal_app import internal_app
from stockflow.platform.settings import ServiceSettings
from stockflow_kit.http import (
    PROBLEM_MEDIA_TYPE,
    Handled,
    Idempotency,
    IdempotencyContext,
    IdempotencyStore,
    problem_response,
)
from stockflow_kit.http.openapi import (
    idempotency_header,
    json_body,
    json_schema,
    problem_responses,
)
from stockflow_kit.observability import current_traceparent, get_correlation_id
from stockflow_kit.observability.forwarding import Collectable

__all__ = ["ERRORS", "MAX_QUANTITY", "create_app"]


def create_app(
    *,
    writer: InventoryWriter,
    reads: CommittedReads,
    store: EventStore,
    idempotency_store: IdempotencyStore,
    settings: ServiceSettings,
    readiness: Callable[[], Awaitable[str | None]],
    registry: CollectorRegistry | None = None,
    metrics: Collectable | None = None,
) -> FastAPI:
    """The inventory ASGI app. ``readiness()`` returns ``None`` when ready, else why not.

    Writes go to the writer (``submit``: batched with the bus's commands); stock reads come
    from its committed in-memory states (:class:`CommittedReads`); the event pages, the
    idempotency records and non-owned SKUs from the store.

    A write naming a SKU another replica owns answers 421 Misdirected Request, naming the
    owner (``owner_replica``, and ``owner_url`` when ``peer_urls`` are known): the caller
    retries there. Forwarding was rejected: it hides a misrouting client behind a second hop.
    """
    app, require_service = internal_app(
        "inventory",
        settings,
        errors=ERRORS,
        readiness=readiness,
        protected=["/inventory/", "/internal/"],
        registry=registry,
        metrics=metrics,
    )
    peer_urls: Sequence[str] = getattr(settings, "peer_urls", ())
    # Public writes come through edge (or staff tools) with one caller; internal ones from
    # services, so their keys never meet.
    public_keys = Idempotency(idempotency_store, caller=lambda _request: "public")

    @app.exception_handler(PartitionNotOwnedError)
    async def misdirected(request: Request, error: Exception) -> Response:
        assert isinstance(error, PartitionNotOwnedError)
        owner: dict[str, object] = {"owner_replica": error.owner}
        if 0 <= error.owner < len(peer_urls):
            owner["owner_url"] = peer_urls[error.owner]
        return problem_response(
            421,
            title="SKU owned by another inventory replica",
            type=ERRORS.type_uri("partition-not-owned"),
            detail=str(error),
            instance=request.url.path,
            extra=owner,
        )

    def answer(outcome: Outcome, correlation_id: str | None) -> tuple[int, bytes, str]:
        """A stock command's answer: 201 with the SKU's view after it, or its problem (with
        the request's correlation id: the writer builds stored answers outside the request)."""
        if outcome.error is not None:
            problem = ERRORS.problem_for(outcome.error)
            assert problem is not None  # every InventoryError has a row
            body = problem.to_dict() | {"correlation_id": correlation_id}
            return problem.status, json.dumps(body).encode(), PROBLEM_MEDIA_TYPE
        return 201, msgspec.json.encode(view(outcome.stock[0])), "application/json"

    async def run(command: Command, ctx: IdempotencyContext | None) -> Handled:
        """Run a stock command once per key; its answer is committed with its effect."""
        correlation_id = get_correlation_id()
        record = None if ctx is None else (lambda o: ctx.record(*answer(o, correlation_id)))
        outcome = await writer.submit(
            command,
            message_id=None if ctx is None else ctx.message_id,
            correlation_id=get_correlation_id(),
            traceparent=current_traceparent(),
            want_stock=True,
            record=record,
        )
        if outcome.status == "duplicate":  # applied by an earlier request with this key
            sku = command.skus[0]
            row = reads.row(sku) or StockRow(sku=sku, on_hand=0, reserved=0, version=0)
            return Handled(200, msgspec.json.encode(view(row)), duplicate=ctx is not None)
        return Handled(*answer(outcome, correlation_id), recorded=ctx is not None)

    stock_read = {
        "model": None,
        "content": {"application/json": {"schema": json_schema(StockView)}},
    }

    @app.get(
        "/inventory/{sku}",
        tags=["stock"],
        dependencies=require_service,
        responses={200: stock_read, **problem_responses(401, 404, 422)},
    )
    async def get_stock(sku: Sku) -> Response:
        row = await reads.get_stock(sku)
        if row is None:
            raise UnknownSkuError(f"no stock was ever recorded for {sku!r}")
        return json_response(view(row))

    # Its ordinary requests skip FastAPI's machinery (the module docstring of stock_read).
    routes = app.router.routes
    index, read_route = next(
        (i, r) for i, r in enumerate(routes) if isinstance(r, APIRoute) and r.endpoint is get_stock
    )
    routes.insert(index, StockReadRoute(read_route, reads=reads, token=settings.token()))

    @app.get(
        "/inventory/{sku}/events",
        tags=["stock"],
        dependencies=require_service,
        responses=problem_responses(401, 404, 422),
    )
    async def get_events(
        sku: Sku,
        after: Annotated[
            int, Query(ge=0, le=MAX_SEQUENCE, description="Sequence to start after.")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        events = await store.read_stream(sku, after=after, limit=limit + 1)
        if not events and after == 0:
            raise UnknownSkuError(f"no events were ever recorded for {sku!r}")
        page = events[:limit]
        views = [
            EventView(
                sequence=e.sequence,
                position=e.position,
                event_id=str(e.event_id),
                type=e.type,
                occurred_at=e.occurred_at.isoformat(),
                correlation_id=e.correlation_id,
                causation_id=e.causation_id,
                data=msgspec.Raw(e.data),
            )
            for e in page
        ]
        more = len(events) > limit
        return json_response(
            EventsPage(sku=sku, events=views, next=page[-1].sequence if more else None)
        )

    writes = {
        "status_code": 201,
        "tags": ["stock"],
        "dependencies": require_service,
        "responses": {
            201: stock_read,
            200: {"description": "A replay or duplicate: the stock now", **stock_read},
            **problem_responses(401, 409, 413, 415, 421, 422, 503),
        },
    }

    @app.post(
        "/inventory/{sku}/receipts",
        openapi_extra=json_body(ReceiptRequest, headers=[idempotency_header()]),
        **writes,  # type: ignore[arg-type]
    )
    async def receive(sku: Sku, request: Request) -> Response:
        body = await request.body()
        receipt = decode(request, body, ReceiptRequest)
        command = ReceiveStock(sku=sku, qty=receipt.qty, reference=receipt.reference)
        return await public_keys.handle(request, body, lambda ctx: run(command, ctx))

    @app.post(
        "/inventory/{sku}/adjustments",
        openapi_extra=json_body(AdjustmentRequest, headers=[idempotency_header()]),
        **writes,  # type: ignore[arg-type]
    )
    async def adjust(sku: Sku, request: Request) -> Response:
        body = await request.body()
        adjustment = decode(request, body, AdjustmentRequest)
        command = AdjustStock(sku=sku, delta=adjustment.delta, reason=adjustment.reason)
        return await public_keys.handle(request, body, lambda ctx: run(command, ctx))

    add_internal_routes(
        app,
        writer=writer,
        reads=reads,
        idempotency_store=idempotency_store,
        require_service=require_service,
    )
    return app
