"""The inventory's HTTP API: stock reads, receipts, adjustments and the internal reservations.

Routes translate HTTP into commands for the writer (the same one the bus feeds, so HTTP
commands are batched with bus commands) and nothing more. Bodies are decoded by msgspec
against the published DTOs; every error becomes problem+json through ONE table (:data:`ERRORS`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Final, TypeVar

import msgspec
from fastapi import FastAPI, Path, Query, Request
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.inventory import AdjustmentRequest, ReceiptRequest, StockView
from stockflow.contracts.inventory_commands import ReserveStockCommand
from stockflow.inventory.domain.commands import (
    AdjustStock,
    Command,
    ReceiveStock,
    ReleaseReservation,
    ReserveStock,
    ShipStock,
)
from stockflow.inventory.domain.errors import (
    BelowReservedError,
    InsufficientStockError,
    InvalidQuantityError,
    InventoryError,
    ReservationConflictError,
)
from stockflow.inventory.entrypoints.idempotency import (
    IdempotencyConflictError,
    InvalidIdempotencyKeyError,
    idempotency_key,
    idempotent,
    message_id_for,
)
from stockflow.inventory.service_layer.partitions import (
    InventoryWriter,
    PartitionNotOwnedError,
    WriterStoppedError,
)
from stockflow.inventory.service_layer.ports import EventStore, StockRow
from stockflow.inventory.service_layer.reservations import holds
from stockflow_kit.http import ErrorTable, instrument, problem_response
from stockflow_kit.observability import get_correlation_id

__all__ = ["ERRORS", "MAX_QUANTITY", "create_app"]

MAX_QUANTITY: Final = 1_000_000_000
"""Largest |qty| or |delta| accepted in one request (keeps sums far from 64-bit limits)."""
_T = TypeVar("_T")
Sku = Annotated[str, Path(min_length=1, max_length=200)]


class InvalidBodyError(Exception):
    """The request body is not valid JSON or does not fit the schema."""


class UnknownSkuError(Exception):
    pass


class UnauthorizedError(Exception):
    pass


class NotReadyError(Exception):
    pass


ERRORS: Final = ErrorTable(
    {
        InsufficientStockError: (409, "Insufficient stock"),
        BelowReservedError: (409, "Stock would fall below what is reserved"),
        ReservationConflictError: (409, "The order already holds another reservation"),
        InvalidQuantityError: (422, "Invalid quantity"),
        InventoryError: (409, "Inventory rule violated"),
        InvalidBodyError: (422, "Invalid request body"),
        InvalidIdempotencyKeyError: (422, "Invalid Idempotency-Key"),
        IdempotencyConflictError: (409, "Idempotency-Key reused with another request"),
        UnknownSkuError: (404, "Unknown SKU"),
        UnauthorizedError: (401, "Missing or invalid service credential"),
        NotReadyError: (503, "Not ready"),
        PartitionNotOwnedError: (421, "SKU owned by another inventory replica"),
        WriterStoppedError: (503, "Inventory writer stopped"),
    }
)


class _SkuList(msgspec.Struct, frozen=True, kw_only=True):
    """Body of release and ship: the order's SKUs (the order id is in the path)."""

    skus: list[str]


class _EventView(msgspec.Struct, kw_only=True):
    sequence: int
    position: int
    event_id: str
    type: str
    occurred_at: str
    correlation_id: str | None
    causation_id: str | None
    data: msgspec.Raw


class _EventsPage(msgspec.Struct, kw_only=True):
    sku: str
    events: list[_EventView]
    next: int | None


def _json(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def _decode(body: bytes, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as error:  # ValidationError is a DecodeError
        raise InvalidBodyError(str(error)) from None


def _check_quantity(field: str, value: int) -> None:
    if abs(value) > MAX_QUANTITY:
        raise InvalidBodyError(f"{field} must be at most {MAX_QUANTITY} in absolute value")


def _view(row: StockRow) -> StockView:
    return StockView(
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.available,
        version=row.version,
    )


def create_app(
    *,
    store: EventStore,
    writer: InventoryWriter,
    service_token: str,
    readiness: Callable[[], Awaitable[str | None]],
    registry: CollectorRegistry | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    max_body_bytes: int = 65_536,
    peer_urls: Sequence[str] = (),
) -> FastAPI:
    """The inventory ASGI app. ``readiness()`` returns ``None`` when ready, else why not.

    A write naming a SKU another replica owns answers 421 Misdirected Request, naming the
    owner (``owner_replica``, and ``owner_url`` when ``peer_urls`` are known): the caller
    retries there. Forwarding was rejected: it hides a misrouting client behind a second hop.
    """
    app = FastAPI(title="stockflow inventory", version="1", lifespan=lifespan)
    instrument(
        app, service="inventory", errors=ERRORS, registry=registry, max_body_bytes=max_body_bytes
    )

    @app.exception_handler(PartitionNotOwnedError)
    async def misdirected(request: Request, error: Exception) -> Response:
        assert isinstance(error, PartitionNotOwnedError)
        owner: dict[str, object] = {"owner_replica": error.owner}
        if error.owner < len(peer_urls):
            owner["owner_url"] = peer_urls[error.owner]
        return problem_response(
            421,
            title="SKU owned by another inventory replica",
            type=ERRORS.type_uri("partition-not-owned"),
            detail=str(error),
            instance=request.url.path,
            extra=owner,
        )

    def require_service(request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not hmac.compare_digest(header.encode(), f"Bearer {service_token}".encode()):
            raise UnauthorizedError("this endpoint needs the inventory service credential")

    async def run(command: Command, message_id: str | None) -> tuple[int, bytes]:
        """Run a stock command; 201 with the SKU's view after it, or the domain problem."""
        outcome = await writer.submit(
            command, message_id=message_id, correlation_id=get_correlation_id(), want_stock=True
        )
        if outcome.error is not None:
            problem = ERRORS.problem_for(outcome.error)
            assert problem is not None  # every InventoryError has a row
            return problem.status, json.dumps(problem.to_dict()).encode()
        if outcome.stock:
            return 201, msgspec.json.encode(_view(outcome.stock[0]))
        state = writer.states.get(command.skus[0])  # a duplicate: answer with the present
        row = StockRow(sku=command.skus[0], on_hand=0, reserved=0, version=0)
        if state is not None:
            row = StockRow(
                sku=state.sku, on_hand=state.on_hand, reserved=state.reserved, version=state.version
            )
        return 200, msgspec.json.encode(_view(row))

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"])
    async def readyz() -> dict[str, str]:
        reason = await readiness()
        if reason is not None:
            raise NotReadyError(reason)
        return {"status": "ready"}

    @app.get("/inventory/{sku}", tags=["stock"])
    async def get_stock(sku: Sku) -> Response:
        row = await store.get_stock(sku)
        if row is None:
            raise UnknownSkuError(f"no stock was ever recorded for {sku!r}")
        return _json(_view(row))

    @app.get("/inventory/{sku}/events", tags=["stock"])
    async def get_events(
        sku: Sku,
        after: Annotated[int, Query(ge=0, description="Sequence to start after.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        events = await store.read_stream(sku, after=after, limit=limit + 1)
        if not events and after == 0:
            raise UnknownSkuError(f"no events were ever recorded for {sku!r}")
        page = events[:limit]
        views = [
            _EventView(
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
        return _json(_EventsPage(sku=sku, events=views, next=page[-1].sequence if more else None))

    @app.post("/inventory/{sku}/receipts", status_code=201, tags=["stock"])
    async def receive(sku: Sku, request: Request) -> Response:
        body = await request.body()
        receipt = _decode(body, ReceiptRequest)
        _check_quantity("qty", receipt.qty)
        command = ReceiveStock(sku=sku, qty=receipt.qty, reference=receipt.reference)
        return await idempotent(request, body, store, lambda mid: run(command, mid))

    @app.post("/inventory/{sku}/adjustments", status_code=201, tags=["stock"])
    async def adjust(sku: Sku, request: Request) -> Response:
        body = await request.body()
        adjustment = _decode(body, AdjustmentRequest)
        _check_quantity("delta", adjustment.delta)
        command = AdjustStock(sku=sku, delta=adjustment.delta, reason=adjustment.reason)
        return await idempotent(request, body, store, lambda mid: run(command, mid))

    async def order_command(request: Request, command: Command) -> dict[str, Any]:
        # With an Idempotency-Key the command is recorded under a message id derived from
        # it: a retry, or a late duplicate after a compensation, is a duplicate (no effect),
        # and the answer is read from the present state instead of a stored response.
        key = idempotency_key(request)
        outcome = await writer.submit(
            command,
            message_id=message_id_for(key) if key is not None else None,
            correlation_id=get_correlation_id(),
        )
        if outcome.error is not None:
            raise outcome.error
        return {
            "duplicate": outcome.status == "duplicate",
            "events": [
                {"type": type(e).__name__, **msgspec.to_builtins(e)} for e in outcome.events
            ],
        }

    @app.post("/internal/reservations", tags=["internal"])
    async def reserve(request: Request) -> Response:
        """Reserve an order's lines all-or-nothing. ``holds``: whether the order holds
        exactly these lines now (what a coordinating replica needs, ADR 0003)."""
        require_service(request)
        order = _decode(await request.body(), ReserveStockCommand)
        for line in order.lines:
            _check_quantity("qty", line.qty)
        lines = tuple((line.sku, line.qty) for line in order.lines)
        result = await order_command(request, ReserveStock(order_id=order.order_id, lines=lines))
        held = holds(writer.states, order.order_id, lines)
        types = {e["type"] for e in result["events"]}
        if "ReservationRejected" in types:
            status = "rejected"
        elif result["events"] or held:
            status = "reserved"
        else:
            status = "not_held"  # a duplicate of a rejected or since released reservation
        return _json({"order_id": order.order_id, "status": status, "holds": held, **result})

    async def settle(
        request: Request, order_id: str, kind: type[ReleaseReservation | ShipStock]
    ) -> Response:
        require_service(request)
        skus = tuple(_decode(await request.body(), _SkuList).skus)
        if not skus:
            raise InvalidBodyError("skus must name at least one SKU")
        result = await order_command(request, kind(order_id=order_id, skus=skus))
        return _json({"order_id": order_id, **result})

    @app.post("/internal/reservations/{order_id}/release", tags=["internal"])
    async def release(order_id: Sku, request: Request) -> Response:
        return await settle(request, order_id, ReleaseReservation)

    @app.post("/internal/reservations/{order_id}/ship", tags=["internal"])
    async def ship(order_id: Sku, request: Request) -> Response:
        return await settle(request, order_id, ShipStock)

    return app
