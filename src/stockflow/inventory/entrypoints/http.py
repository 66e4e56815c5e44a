"""The inventory's HTTP API: stock reads, receipts, adjustments and the internal reservations.

Routes translate HTTP into commands for the writer (the same one the bus feeds, so HTTP
commands are batched with bus commands) and nothing more. Bodies are decoded by msgspec
against the published DTOs; every error becomes problem+json through ONE table (:data:`ERRORS`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Final, TypeVar

import msgspec
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.inventory import (
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
    SKU_PATTERN,
    AdjustmentRequest,
    ReceiptRequest,
    StockView,
)
from stockflow.contracts.inventory import (
    Sku as SkuRule,
)
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
from stockflow.inventory.service_layer.batch import Outcome
from stockflow.inventory.service_layer.ports import (
    EventStore,
    EventStoreUnavailableError,
    StockRow,
)
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow.inventory.service_layer.writer import (
    InventoryWriter,
    PartitionNotOwnedError,
    WriterStoppedError,
)
from stockflow.platform.settings import ServiceSettings
from stockflow_kit.http import (
    IDEMPOTENCY_ERRORS,
    PROBLEM_MEDIA_TYPE,
    ErrorTable,
    Handled,
    Idempotency,
    IdempotencyConflictError,
    IdempotencyContext,
    IdempotencyStore,
    idempotency_message_id,
    idempotency_request_hash,
    problem_response,
)
from stockflow_kit.http.credentials import (
    NotReadyError,
    ServiceCredentialError,
    probe_routes,
    service_credential,
)
from stockflow_kit.http.openapi import (
    bearer_security,
    idempotency_header,
    json_body,
    json_schema,
    problem_responses,
)
from stockflow_kit.observability import get_correlation_id
from stockflow_kit.observability.forwarding import Collectable

__all__ = ["ERRORS", "MAX_QUANTITY", "create_app"]

MAX_SEQUENCE: Final = 2**63 - 1
"""Largest stream position a query may name (a 64-bit signed integer in every store)."""
_T = TypeVar("_T")
Sku = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SKU_LENGTH,
        pattern=SKU_PATTERN,
        description="Letters, digits and ._:- (1 to 100), starting with a letter or digit.",
    ),
]
_JSON_TYPES: Final = ("application/json",)


class InvalidBodyError(Exception):
    """The request body is not valid JSON or does not fit the schema."""


class UnsupportedMediaTypeError(Exception):
    """The body is not declared as JSON."""


class UnknownSkuError(Exception):
    pass


ERRORS: Final = ErrorTable(
    {
        InsufficientStockError: (409, "Insufficient stock"),
        BelowReservedError: (409, "Stock would fall below what is reserved"),
        ReservationConflictError: (409, "The order already holds another reservation"),
        InvalidQuantityError: (422, "Invalid quantity"),
        InventoryError: (409, "Inventory rule violated"),
        InvalidBodyError: (422, "Invalid request body"),
        UnknownSkuError: (404, "Unknown SKU"),
        UnsupportedMediaTypeError: (415, "Unsupported media type"),
        ServiceCredentialError: (401, "Missing or invalid service credential"),
        NotReadyError: (503, "Not ready"),
        EventStoreUnavailableError: (503, "Storage unavailable"),
        PartitionNotOwnedError: (421, "SKU owned by another inventory replica"),
        WriterStoppedError: (503, "Inventory writer stopped"),
    }
)
ERRORS.update(IDEMPOTENCY_ERRORS)


class _SkuList(msgspec.Struct, frozen=True, kw_only=True):
    """Body of release and ship: the order's SKUs (the order id is in the path)."""

    skus: Annotated[list[SkuRule], msgspec.Meta(min_length=1, max_length=100)]


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


def _decode(request: Request, body: bytes, kind: type[_T]) -> _T:
    media = request.headers.get("content-type", "application/json").split(";", 1)[0].strip()
    if media.lower() not in _JSON_TYPES and not media.lower().endswith("+json"):
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {media!r}")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as error:  # ValidationError is a DecodeError
        raise InvalidBodyError(str(error)) from None


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
    app = FastAPI(title="stockflow inventory", version="1", redirect_slashes=False)
    settings.instrument(app, errors=ERRORS, registry=registry, metrics=metrics)
    app.router.routes.extend(probe_routes(readiness))
    require_service = Depends(service_credential(settings.token()))
    peer_urls: Sequence[str] = getattr(settings, "peer_urls", ())
    # Public writes come through edge (or staff tools) with one caller; internal ones from
    # services, so their keys never meet.
    public_keys = Idempotency(idempotency_store, caller=lambda _request: "public")
    internal_keys = Idempotency(idempotency_store, caller=lambda _request: "service")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = bearer_security(
                document,
                name="serviceCredential",
                description="The service credential other services present.",
                paths=["/internal/"],
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

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

    def answer(outcome: Outcome) -> tuple[int, bytes, str]:
        """A stock command's answer: 201 with the SKU's view after it, or its problem."""
        if outcome.error is not None:
            problem = ERRORS.problem_for(outcome.error)
            assert problem is not None  # every InventoryError has a row
            return problem.status, json.dumps(problem.to_dict()).encode(), PROBLEM_MEDIA_TYPE
        return 201, msgspec.json.encode(_view(outcome.stock[0])), "application/json"

    async def run(command: Command, ctx: IdempotencyContext | None) -> Handled:
        """Run a stock command once per key; its answer is committed with its effect."""
        record = None if ctx is None else (lambda o: ctx.record(*answer(o)))
        outcome = await writer.submit(
            command,
            message_id=None if ctx is None else ctx.message_id,
            correlation_id=get_correlation_id(),
            want_stock=True,
            record=record,
        )
        if outcome.status == "duplicate":  # applied by an earlier request with this key
            sku = command.skus[0]
            row = reads.row(sku) or StockRow(sku=sku, on_hand=0, reserved=0, version=0)
            return Handled(200, msgspec.json.encode(_view(row)), duplicate=ctx is not None)
        return Handled(*answer(outcome), recorded=ctx is not None)

    stock_read = {
        "model": None,
        "content": {"application/json": {"schema": json_schema(StockView)}},
    }

    @app.get(
        "/inventory/{sku}",
        tags=["stock"],
        responses={200: stock_read, **problem_responses(404, 422)},
    )
    async def get_stock(sku: Sku) -> Response:
        row = await reads.get_stock(sku)
        if row is None:
            raise UnknownSkuError(f"no stock was ever recorded for {sku!r}")
        return _json(_view(row))

    @app.get("/inventory/{sku}/events", tags=["stock"], responses=problem_responses(404, 422))
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

    writes = {
        "status_code": 201,
        "tags": ["stock"],
        "responses": {
            201: stock_read,
            200: {"description": "A replay or duplicate: the stock now", **stock_read},
            **problem_responses(409, 413, 415, 421, 422, 503),
        },
    }

    @app.post(
        "/inventory/{sku}/receipts",
        openapi_extra=json_body(ReceiptRequest, headers=[idempotency_header()]),
        **writes,  # type: ignore[arg-type]
    )
    async def receive(sku: Sku, request: Request) -> Response:
        body = await request.body()
        receipt = _decode(request, body, ReceiptRequest)
        command = ReceiveStock(sku=sku, qty=receipt.qty, reference=receipt.reference)
        return await public_keys.handle(request, body, lambda ctx: run(command, ctx))

    @app.post(
        "/inventory/{sku}/adjustments",
        openapi_extra=json_body(AdjustmentRequest, headers=[idempotency_header()]),
        **writes,  # type: ignore[arg-type]
    )
    async def adjust(sku: Sku, request: Request) -> Response:
        body = await request.body()
        adjustment = _decode(request, body, AdjustmentRequest)
        command = AdjustStock(sku=sku, delta=adjustment.delta, reason=adjustment.reason)
        return await public_keys.handle(request, body, lambda ctx: run(command, ctx))

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
            outcome = await writer.submit(command, correlation_id=get_correlation_id())
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
        "dependencies": [require_service],
        "responses": problem_responses(401, 409, 413, 415, 421, 422, 503),
    }

    @app.post(
        "/internal/reservations",
        openapi_extra=json_body(ReserveStockCommand, headers=[idempotency_header()]),
        **internal,  # type: ignore[arg-type]
    )
    async def reserve(request: Request) -> Response:
        """Reserve an order's lines all-or-nothing. ``holds``: whether the order holds
        exactly these lines now (what a coordinating replica needs, ADR 0003)."""
        body = await request.body()
        order = _decode(request, body, ReserveStockCommand)
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
        return _json({"order_id": order.order_id, "status": status, "holds": held, **result})

    async def settle(
        request: Request, order_id: str, kind: type[ReleaseReservation | ShipStock]
    ) -> Response:
        body = await request.body()
        skus = tuple(_decode(request, body, _SkuList).skus)
        result = await order_command(request, body, kind(order_id=order_id, skus=skus))
        return _json({"order_id": order_id, **result})

    @app.post(
        "/internal/reservations/{order_id}/release",
        openapi_extra=json_body(_SkuList, headers=[idempotency_header()]),
        **internal,  # type: ignore[arg-type]
    )
    async def release(order_id: Sku, request: Request) -> Response:
        return await settle(request, order_id, ReleaseReservation)

    @app.post(
        "/internal/reservations/{order_id}/ship",
        openapi_extra=json_body(_SkuList, headers=[idempotency_header()]),
        **internal,  # type: ignore[arg-type]
    )
    async def ship(order_id: Sku, request: Request) -> Response:
        return await settle(request, order_id, ShipStock)

    return app
