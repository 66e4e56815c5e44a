"""The inventory HTTP API's vocabulary: its error table, body decoding, path rules and views.

Shared by the public routes (:mod:`.http`) and the internal ones (:mod:`.internal_http`).
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from fastapi import Path

from stockflow.contracts.inventory import MAX_SKU_LENGTH, SKU_PATTERN, StockView
from stockflow.contracts.inventory import Sku as SkuRule
from stockflow.inventory.domain.errors import (
    BelowReservedError,
    InsufficientStockError,
    InvalidQuantityError,
    InventoryError,
    ReservationConflictError,
)
from stockflow.inventory.service_layer.ports import (
    EventStoreUnavailableError,
    LeaseLostError,
    StockRow,
)
from stockflow.inventory.service_layer.writer import PartitionNotOwnedError, WriterStoppedError
from stockflow_kit.http import IDEMPOTENCY_ERRORS, ErrorTable
from stockflow_kit.http.bodies import (
    BODY_ERRORS,
    InvalidBodyError,
    UnsupportedMediaTypeError,
    decode_json,
    json_response,
)
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
Sku = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SKU_LENGTH,
        pattern=SKU_PATTERN,
        description="Letters, digits and ._:- (1 to 100), starting with a letter or digit.",
    ),
]


class UnknownSkuError(Exception):
    pass


ERRORS: Final = ErrorTable(
    {
        InsufficientStockError: (409, "Insufficient stock"),
        BelowReservedError: (409, "Stock would fall below what is reserved"),
        ReservationConflictError: (409, "The order already holds another reservation"),
        InvalidQuantityError: (422, "Invalid quantity"),
        InventoryError: (409, "Inventory rule violated"),
        UnknownSkuError: (404, "Unknown SKU"),
        ServiceCredentialError: (401, "Missing or invalid service credential"),
        NotReadyError: (503, "Not ready"),
        EventStoreUnavailableError: (503, "Storage unavailable"),
        PartitionNotOwnedError: (421, "SKU owned by another inventory replica"),
        LeaseLostError: (421, "SKU's partition moved to another inventory member"),
        WriterStoppedError: (503, "Inventory writer stopped"),
    }
)
ERRORS.update(IDEMPOTENCY_ERRORS).update(BODY_ERRORS)
decode = decode_json


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


def view(row: StockRow) -> StockView:
    return StockView(
        sku=row.sku,
        on_hand=row.on_hand,
        reserved=row.reserved,
        available=row.available,
        version=row.version,
    )
