"""The inventory members' batch call: many parts of spanning reservations in one request.

``POST`` :data:`PARTS_ROUTE` (service credential) carries :class:`ReservationParts`: reserve
or release parts, each with the Idempotency-Key it would carry alone on
``/internal/reservations`` (or ``…/{order_id}/release``), and is recorded under the same
message id as there, so a part is applied once whichever route carried it. The member decides
every part it owns in its next commit and answers :class:`PartAnswers`, one per part in
request order, each with the status the part would have had alone (ADR 0010).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from stockflow.contracts.inventory import OrderId, Sku
from stockflow.contracts.inventory_commands import CommandLine

__all__ = [
    "MAX_PARTS",
    "PARTS_ROUTE",
    "PartAnswer",
    "PartAnswers",
    "PartKey",
    "ReleasePart",
    "ReservationParts",
    "ReservePart",
]

PARTS_ROUTE: Final = "/internal/reservation-parts"
MAX_PARTS: Final = 500
"""Parts per request at most (a client sends more in several requests)."""

PartKey = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[!-~]+$")]
"""An Idempotency-Key: 1 to 255 printable ASCII characters without spaces."""
CorrelationId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ReservePart(msgspec.Struct, frozen=True, kw_only=True, tag="reserve", tag_field="op"):
    """Reserve ``lines`` for the order, all or nothing (the body of ``/internal/reservations``)."""

    key: PartKey
    order_id: OrderId
    lines: Annotated[list[CommandLine], msgspec.Meta(min_length=1, max_length=100)]
    correlation_id: CorrelationId | None = None


class ReleasePart(msgspec.Struct, frozen=True, kw_only=True, tag="release", tag_field="op"):
    """Release what the order holds on ``skus`` (a no-op where it holds nothing)."""

    key: PartKey
    order_id: OrderId
    skus: Annotated[list[Sku], msgspec.Meta(min_length=1, max_length=100)]
    correlation_id: CorrelationId | None = None


class ReservationParts(msgspec.Struct, frozen=True, kw_only=True):
    """The request: parts with distinct keys."""

    parts: Annotated[
        list[ReservePart | ReleasePart], msgspec.Meta(min_length=1, max_length=MAX_PARTS)
    ]


class PartAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One part's answer.

    ``status`` is what the part alone would have been answered: 200 decided (``holds``, for a
    reservation: whether the order holds exactly these lines now), 409/422 refused by a rule
    (holds nothing), 421 not this member's partition (any more), 503 not decided now. Only a
    2xx, 409 or 422 is a definite answer; anything else leaves the part's outcome unknown.
    """

    key: str
    status: int
    outcome: Literal["reserved", "rejected", "not_held", "released", "refused", "undecided"]
    holds: bool | None = None
    title: str | None = None
    detail: str | None = None


class PartAnswers(msgspec.Struct, frozen=True, kw_only=True):
    parts: list[PartAnswer]
