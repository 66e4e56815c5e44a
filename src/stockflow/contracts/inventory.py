"""Published schemas of the inventory service: the ``data`` of its events and its HTTP DTOs.

Every event travels in the kit's envelope (``API.md``): ``type`` is the struct's name as listed
in :data:`EVENT_TYPES`, ``schema_version`` is :data:`SCHEMA_VERSION`, ``subject`` is the SKU
whose stream holds the event and ``sequence`` its position in that stream.

Evolution rules: fields may be added with a default (consumers ignore unknown fields, msgspec's
default); renaming, removing or changing the meaning of a field needs a new schema version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

import msgspec

__all__ = [
    "EVENT_TYPES",
    "MAX_QUANTITY",
    "MAX_SKU_LENGTH",
    "REJECTION_INSUFFICIENT_STOCK",
    "SCHEMA_VERSION",
    "SKU_PATTERN",
    "AdjustmentRequest",
    "InventoryEvent",
    "LowStockDetected",
    "OrderId",
    "ReceiptRequest",
    "RejectedLine",
    "ReservationRejected",
    "ReservationReleased",
    "Sku",
    "StockAdjusted",
    "StockReceived",
    "StockReserved",
    "StockShipped",
    "StockView",
]

SCHEMA_VERSION: Final = 1
"""Version of every inventory event ``data`` schema in this module."""

REJECTION_INSUFFICIENT_STOCK: Final = "insufficient_stock"
"""``ReservationRejected.reason`` when at least one line asks for more than is available."""

MAX_QUANTITY: Final = 1_000_000_000
"""Largest quantity (or |delta|) of one command: keeps every sum far from 64-bit limits."""

MAX_SKU_LENGTH: Final = 100
SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
"""The one SKU rule, everywhere (paths, bodies, commands, events): 1 to 100 characters of
letters, digits and ``._:-``, starting with a letter or digit. Order ids follow it too."""

Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SKU_LENGTH, pattern=SKU_PATTERN)]
OrderId = Sku
Quantity = Annotated[int, msgspec.Meta(gt=0, le=MAX_QUANTITY)]
Delta = Annotated[
    int,
    msgspec.Meta(
        ge=-MAX_QUANTITY,
        le=MAX_QUANTITY,
        description="A signed, non-zero correction.",
        extra_json_schema={"not": {"const": 0}},
    ),
]


class StockReceived(msgspec.Struct, frozen=True, kw_only=True):
    """Goods arrived: ``on_hand`` grew by ``qty``."""

    sku: str
    qty: Quantity
    reference: str = ""


class StockAdjusted(msgspec.Struct, frozen=True, kw_only=True):
    """A signed correction of ``on_hand`` (stock count, damage …); never below ``reserved``."""

    sku: str
    delta: int
    reason: str = ""


class StockReserved(msgspec.Struct, frozen=True, kw_only=True):
    """``qty`` of ``sku`` is held for ``order_id``.

    An order spanning several SKUs yields one event per SKU, all committed together: either
    every line of the order is reserved or none is (then a :class:`ReservationRejected`).
    """

    sku: str
    order_id: str
    qty: Quantity


class RejectedLine(msgspec.Struct, frozen=True, kw_only=True):
    """One order line that could not be reserved, with what was available at that moment."""

    sku: str
    requested: int
    available: int


class ReservationRejected(msgspec.Struct, frozen=True, kw_only=True):
    """Nothing of ``order_id`` was reserved; ``lines`` lists every line that fell short.

    ``sku`` is the stream the event is recorded in (the first failing line's SKU).
    """

    sku: str
    order_id: str
    reason: str
    lines: tuple[RejectedLine, ...]


class ReservationReleased(msgspec.Struct, frozen=True, kw_only=True):
    """The reservation of ``order_id`` on ``sku`` was given back (cancel or saga timeout)."""

    sku: str
    order_id: str
    qty: Quantity


class StockShipped(msgspec.Struct, frozen=True, kw_only=True):
    """The reservation of ``order_id`` on ``sku`` left the building: ``on_hand`` and
    ``reserved`` both fell by ``qty``."""

    sku: str
    order_id: str
    qty: Quantity


class LowStockDetected(msgspec.Struct, frozen=True, kw_only=True):
    """``available`` fell below ``threshold``; emitted once per downward crossing."""

    sku: str
    available: int
    threshold: int


InventoryEvent = (
    StockReceived
    | StockAdjusted
    | StockReserved
    | ReservationRejected
    | ReservationReleased
    | StockShipped
    | LowStockDetected
)

EVENT_TYPES: Final[Mapping[str, type[InventoryEvent]]] = {
    cls.__name__: cls
    for cls in (
        StockReceived,
        StockAdjusted,
        StockReserved,
        ReservationRejected,
        ReservationReleased,
        StockShipped,
        LowStockDetected,
    )
}
"""Envelope ``type`` -> the struct of its ``data``."""


class StockView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /inventory/{sku}``: the projection of one SKU; ``available = on_hand - reserved``."""

    sku: str
    on_hand: int
    reserved: int
    available: int
    version: int


class ReceiptRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /inventory/{sku}/receipts`` body."""

    qty: Quantity
    reference: Annotated[str, msgspec.Meta(max_length=200)] = ""


class AdjustmentRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /inventory/{sku}/adjustments`` body: a signed, non-zero correction."""

    delta: Delta
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""
