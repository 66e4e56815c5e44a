"""The inventory's internal routes: reserve, release and ship an order's lines, for services.

Other services (orders; the replicas' coordinator) call them with the service credential and an
Idempotency-Key. Answers are always read from the PRESENT state (see
:func:`add_internal_routes`), but a key reused with another request is a 409 here too.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI, Request
from starlette.responses import Response

from stockflow.contracts.inventory_commands import ReserveStockCommand
from stockflow.inventory.domain.commands import (
    Command,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.entrypoints.http_io import Sku, SkuList, decode, json_response
from stockflow.inventory.service_layer.leases import INTERNAL_CALLER, RELEASE_ROUTE, RESERVE_ROUTE
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow_kit.http import (
    Idempotency,
    IdempotencyConflictError,
    IdempotencyContext,
    IdempotencyStore,
    idempotency_message_id,
    idempotency_request_hash,
)
from stockflow_kit.http.openapi import idempotency_header, json_body, problem_responses
from stockflow_kit.observability import current_traceparent, get_correlation_id

__all__ = ["add_internal_routes"]


def add_internal_routes(
    app: FastAPI,
    *,
    writer: InventoryWriter,
    reads: CommittedReads,
    idempotency_store: IdempotencyStore,
    require_service: list[Any],
) -> None:
    """Add ``/internal/reservations`` (reserve) and its release and ship routes to *app*."""
    internal_keys = Idempotency(idempotency_store, caller=lambda _request: INTERNAL_CALLER)

    async def order_command(request: Request, body: bytes, command: Command) -> dict[str, Any]:
        """Run an order command from another service, once per Idempotency-Key.

        The key's effect is recorded under a message id derived from its scope (route and
        caller): a retry, or a late duplicate after a compensation, is a duplicate (no
        effect). The answer is always read from the PRESENT state (a coordinating replica
        needs to know whether the order holds its lines now, ADR 0003), so no answer is
        replayed; but the request's hash is committed with the effect, and a key reused
        with another request is a 409 on these routes too.
        """
        key = internal_keys.key_of(request)
        if key is None:
            outcome = await writer.submit(
                command, correlation_id=get_correlation_id(), traceparent=current_traceparent()
            )
        else:
            scope = internal_keys.scope_of(request)
            request_hash = idempotency_request_hash(
                request.method, request.url.path, request.scope.get("query_string", b""), body
            )
            seen = await idempotency_store.get(scope, key)
            if seen is not None and seen.request_hash != request_hash:
                raise IdempotencyConflictError(
                    f"Idempotency-Key {key!r} was already used with a different request",
                    key=key,
                )
            ctx = IdempotencyContext(
                scope=scope,
                key=key,
                request_hash=request_hash,
                message_id=idempotency_message_id(scope, key),
            )
            outcome = await writer.submit(
                command,
                message_id=ctx.message_id,
                correlation_id=get_correlation_id(),
                traceparent=current_traceparent(),
                record=lambda _outcome: ctx.record(202, b""),
            )
            if outcome.status == "duplicate" and seen is None:
                stored = await idempotency_store.get(scope, key)
                if stored is not None and stored.request_hash != request_hash:
                    raise IdempotencyConflictError(
                        f"Idempotency-Key {key!r} was already used with a different request",
                        key=key,
                    )
        if outcome.error is not None:
            raise outcome.error
        return {
            "duplicate": outcome.status == "duplicate",
            "events": [
                {"type": type(e).__name__, **msgspec.to_builtins(e)} for e in outcome.events
            ],
        }

    internal = {
        "tags": ["internal"],
        "dependencies": require_service,
        "responses": problem_responses(401, 409, 413, 415, 421, 422, 503),
    }

    @app.post(
        RESERVE_ROUTE,
        openapi_extra=json_body(ReserveStockCommand, headers=[idempotency_header()]),
        **internal,  # type: ignore[arg-type]
    )
    async def reserve(request: Request) -> Response:
        """Reserve an order's lines all-or-nothing. ``holds``: whether the order holds
        exactly these lines now (what a coordinating replica needs, ADR 0003)."""
        body = await request.body()
        order = decode(request, body, ReserveStockCommand)
        lines = tuple((line.sku, line.qty) for line in order.lines)
        command = ReserveStock(order_id=order.order_id, lines=lines)
        result = await order_command(request, body, command)
        held = reads.holds(order.order_id, lines)
        types = {e["type"] for e in result["events"]}
        if "ReservationRejected" in types:
            status = "rejected"
        elif result["events"] or held:
            status = "reserved"
        else:
            status = "not_held"  # a duplicate of a rejected or since released reservation
        return json_response(
            {"order_id": order.order_id, "status": status, "holds": held, **result}
        )

    async def settle(
        request: Request, order_id: str, kind: type[ReleaseReservation | ShipStock]
    ) -> Response:
        body = await request.body()
        skus = tuple(decode(request, body, SkuList).skus)
        result = await order_command(request, body, kind(order_id=order_id, skus=skus))
        return json_response({"order_id": order_id, **result})

    @app.post(
        RELEASE_ROUTE,
        openapi_extra=json_body(SkuList, headers=[idempotency_header()]),
        **internal,  # type: ignore[arg-type]
    )
    async def release(order_id: Sku, request: Request) -> Response:
        return await settle(request, order_id, ReleaseReservation)

    @app.post(
        "/internal/reservations/{order_id}/ship",
        openapi_extra=json_body(SkuList, headers=[idempotency_header()]),
        **internal,  # type: ignore[arg-type]
    )
    async def ship(order_id: Sku, request: Request) -> Response:
        return await settle(request, order_id, ShipStock)
