"""The inventory HTTP API's vocabulary: its error table, body decoding, path rules and views.

Shared by the public routes (:mod:`.http`) and the internal ones (:mod:`.internal_http`).
"""

from __future__ import annotations

from typing import Annotated, Final, TypeVar

import msgspec
from fastapi import Path, Request
from starlette.responses import Response

from stockflow.contracts.inventory import MAX_SKU_LENGTH, SKU_PATTERN, StockView
from stockflow.contracts.inventory import Sku as SkuRule
from stockflow.inventory.domain.errors import (
    BelowReservedError,
    InsufficientStockError,
    InvalidQuantityError,
    InventoryError,
    ReservationConflictError,
)
from stockflow.inventory.service_layer.ports import EventStoreUnavailableError, StockRow
from stockflow.inventory.service_layer.writer import PartitionNotOwnedError, WriterStoppedError
from stockflow_kit.http import IDEMPOTENCY_ERRORS, ErrorTable
from stockflow_kit.http.credentials import NotReadyError, ServiceCredentialError

__all__ = [
    "ERRORS",
    "MAX_SEQUENCE",
    "EventView",
    "EventsPage",
    "InvalidBodyError",
    "Sku",
    "SkuList",
    "UnknownSkuError",
    "UnsupportedMediaTypeError",
    "decode",
    "json_response",
    "view",
]

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


class SkuList(msgspec.Struct, frozen=True, kw_only=True):
    """Body of release and ship: the order's SKUs (the order id is in the path)."""

    skus: Annotated[list[SkuRule], msgspec.Meta(min_length=1, max_length=100)]


class EventView(msgspec.Struct, kw_only=True):
    sequence: int
    position: int
    event_id: str
    type: str
    occurred_at: str
    correlation_id: str | None
    causation_id: str | None
    data: msgspec.Raw


class EventsPage(msgspec.Struct, kw_only=True):
    sku: str
    events: list[EventView]
    next: int | None


def json_response(value: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def decode(request: Request, body: bytes, kind: type[_T]) -> _T:
    media = request.headers.get("content-type", "application/json").split(";", 1)[0].strip()
    if media.lower() not in _JSON_TYPES and not media.lower().endswith("+json"):
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {media!r}")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        if "got `float`" not in str(error):
            raise InvalidBodyError(str(error)) from None
        # JSON does not tell 3 from 3.0, and neither does the published schema ("integer"):
        # a whole number written with a fraction is that number. Only this rare path pays.
        try:
            return msgspec.convert(_whole_numbers(msgspec.json.decode(body)), type=kind)
        except msgspec.ValidationError as again:
            raise InvalidBodyError(str(again)) from None
    except msgspec.DecodeError as error:
        raise InvalidBodyError(str(error)) from None


def _whole_numbers(value: object) -> object:
    """*value* with every float that is a whole number turned into an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    return value


def view(row: StockRow) -> StockView:
    return StockView(
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.available,
        version=row.version,
    )
