"""The inventory members' batch route: many parts of spanning reservations, one commit.

``POST /internal/reservation-parts`` (:mod:`stockflow.contracts.inventory_parts`) is what a
coordinator sends another member for ALL the parts of one consumed batch that member owns
(ADR 0010). Each part is queued to the writer as its own submission, recorded under the
message id the single-part route would record it under (``recorded_id``: so a part is
applied once whichever route carried it, and a part redone locally after its partition
moved is a duplicate too), with its Idempotency-Key record committed with its effect. The
writer takes them all into its next batch: one commit answers the request, whose lease claim
(fencing, ADR 0010) covers every partition written. Each part is answered on its own, in
request order, with the status it would have had alone; only a malformed request as a whole
is a problem+json (415, 422; 413 from the size limit; 401 without the credential).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
import structlog
from fastapi import FastAPI, Request
from starlette.responses import Response

from stockflow.contracts.inventory_parts import (
    PARTS_ROUTE,
    PartAnswer,
    PartAnswers,
    ReleasePart,
    ReservationParts,
    ReservePart,
)
from stockflow.inventory.domain.commands import ReleaseReservation, ReserveStock
from stockflow.inventory.domain.events import ReservationRejected
from stockflow.inventory.entrypoints.http_io import ERRORS, InvalidBodyError, decode
from stockflow.inventory.service_layer.batch import Outcome, Submission
from stockflow.inventory.service_layer.leases import (
    INTERNAL_CALLER,
    RELEASE_ROUTE,
    RESERVE_ROUTE,
    recorded_id,
)
from stockflow.inventory.service_layer.reads import CommittedReads
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow_kit.http import (
    IdempotencyContext,
    IdempotencyStore,
    idempotency_request_hash,
)
from stockflow_kit.http.bodies import json_response
from stockflow_kit.http.openapi import json_body, problem_responses
from stockflow_kit.observability import current_traceparent, get_correlation_id

__all__ = ["PARTS_SCOPE", "add_part_routes"]

PARTS_SCOPE = f"POST {PARTS_ROUTE}|{INTERNAL_CALLER}"
"""The scope of the parts' Idempotency-Key records (a key reused with another part is a
409 for that part)."""

_log = structlog.get_logger("stockflow.inventory")

Part = ReservePart | ReleasePart


def _part_hash(part: Part) -> str:
    """What tells a retried part from another part under the same key (not the correlation
    id: a redelivery may carry another)."""
    what = part.lines if isinstance(part, ReservePart) else part.skus
    body = msgspec.json.encode([part.order_id, what])
    return idempotency_request_hash("POST", PARTS_ROUTE, type(part).__name__.encode(), body)


def add_part_routes(
    app: FastAPI,
    *,
    writer: InventoryWriter,
    reads: CommittedReads,
    idempotency_store: IdempotencyStore,
    require_service: list[Any],
) -> None:
    """Add :data:`~stockflow.contracts.inventory_parts.PARTS_ROUTE` to *app*."""

    def submission(part: Part, traceparent: str | None) -> Submission:
        if isinstance(part, ReservePart):
            command: ReserveStock | ReleaseReservation = ReserveStock(
                order_id=part.order_id, lines=tuple((line.sku, line.qty) for line in part.lines)
            )
            route = RESERVE_ROUTE
        else:
            command = ReleaseReservation(order_id=part.order_id, skus=tuple(part.skus))
            route = RELEASE_ROUTE
        ctx = IdempotencyContext(
            scope=PARTS_SCOPE,
            key=part.key,
            request_hash=_part_hash(part),
            message_id=recorded_id(route, part.key),
        )
        return Submission(
            message_id=ctx.message_id,
            command=command,
            correlation_id=part.correlation_id or get_correlation_id(),
            traceparent=traceparent,
            record=lambda _outcome: ctx.record(202, b""),
        )

    async def reused(part: Part, result: Outcome | BaseException) -> bool:
        """Whether a duplicate part's key was committed with ANOTHER part."""
        if not isinstance(result, Outcome) or result.status != "duplicate":
            return False
        stored = await idempotency_store.get(PARTS_SCOPE, part.key)
        return stored is not None and stored.request_hash != _part_hash(part)

    def answer(part: Part, result: Outcome | BaseException, conflict: bool) -> PartAnswer:
        if conflict:
            return PartAnswer(
                key=part.key,
                status=409,
                outcome="refused",
                title="Idempotency-Key reused",
                detail=f"Idempotency-Key {part.key!r} was already used with another part",
            )
        error = result if isinstance(result, BaseException) else result.error
        if error is not None:
            problem = ERRORS.problem_for(error)
            if problem is None:
                _log.error("inventory.part_failed", key=part.key, error=repr(error))
            status = problem.status if problem is not None else 500
            definite = status in (409, 422)
            return PartAnswer(
                key=part.key,
                status=status,
                outcome="refused" if definite else "undecided",
                title=problem.title if problem is not None else "Internal error",
                detail=problem.detail if problem is not None else None,
            )
        assert isinstance(result, Outcome)
        if isinstance(part, ReleasePart):
            return PartAnswer(key=part.key, status=200, outcome="released")
        held = reads.holds(part.order_id, [(line.sku, line.qty) for line in part.lines])
        outcome: Literal["rejected", "reserved", "not_held"]
        if any(isinstance(event, ReservationRejected) for event in result.events):
            outcome = "rejected"
        elif result.events or held:
            outcome = "reserved"
        else:
            outcome = "not_held"  # a duplicate of a rejected or since released reservation
        return PartAnswer(key=part.key, status=200, outcome=outcome, holds=held)

    @app.post(
        PARTS_ROUTE,
        tags=["internal"],
        dependencies=require_service,
        openapi_extra=json_body(ReservationParts),
        responses=problem_responses(401, 413, 415, 422),
    )
    async def reservation_parts(request: Request) -> Response:
        """Reserve or release many parts of spanning reservations in one commit; one answer
        per part, in order (see :class:`~stockflow.contracts.inventory_parts.PartAnswer`)."""
        body = await request.body()
        parts = decode(request, body, ReservationParts).parts
        if len({part.key for part in parts}) < len(parts):
            raise InvalidBodyError("every part needs a key of its own")
        traceparent = current_traceparent()
        pending: list[asyncio.Future[Outcome] | BaseException] = []
        for part in parts:
            try:
                pending.append(writer.enqueue(submission(part, traceparent), urgent=True))
            except Exception as error:  # not owned here, writer stopped: this part only
                pending.append(error)
        results = await asyncio.gather(*(_settled(p) for p in pending))
        conflicts = await asyncio.gather(
            *(reused(part, result) for part, result in zip(parts, results, strict=True))
        )
        answers = [
            answer(part, result, conflict)
            for part, result, conflict in zip(parts, results, conflicts, strict=True)
        ]
        return json_response(PartAnswers(parts=answers))


async def _settled(pending: asyncio.Future[Outcome] | BaseException) -> Outcome | BaseException:
    if isinstance(pending, BaseException):
        return pending
    try:
        return await pending
    except Exception as error:  # the batch holding it failed (lease lost, storage down)
        return error
