"""Reservations whose lines span inventory replicas: try every part, compensate on a rejection.

The coordinator is the replica owning the first line's SKU (:mod:`.ownership`). For one
consumed ``ReserveStock`` (message id ``M``) it:

(With leases, ADR 0010, the parts are per partition, each keyed by ``M`` scoped to its
partition whoever owns it, and "replica" below reads "partition"; the peers find a
partition's current owner from the leases. A partition may be remote on one attempt and
local on the next, so a local part is recorded under the id the internal API would record
it under: :func:`~.leases.recorded_id`.)


1. splits the lines by owner and reserves every part at once: its own through its writer
   (message id ``M``), each other one through :class:`~.ports.Peers` (key = ``M`` scoped to
   that replica, so the participant records it under its own id);
2. when every part holds its lines: done;
3. when any part was rejected: releases every part that holds (key + ``/release``), so the
   order ends up holding NOTHING on any replica; only then does the caller ack the message;
4. when any part gave no definite answer (:class:`~.ports.PeerUnavailableError`, a writer
   failure): raises, so the consumed batch is nakked, redelivered and this is re-driven.

A consumed batch's spanning orders are driven together (:meth:`ReservationCoordinator.reserve_all`):
step 1 for all of them is one round, step 3 for all that need it another, and each round
sends every remote part in ONE :meth:`~.ports.Peers.call`, one request per owner, which the
owner answers part by part after one commit (``POST /internal/reservation-parts``). Before,
every remote part was its own request waiting for the owner's next commit.

Why re-driving is safe: every part is recorded under its own deterministic message id, so a
retried, redelivered or late duplicate part is a ``duplicate`` to its writer and changes
nothing; its result is then read from the committed state (does the order hold exactly these
lines?). A part already compensated reads as "not held" and is never reserved again. So the
order converges to all lines or none. Between steps 1 and 3 an order may briefly hold part of
its lines (the transient window, ADR 0003); the message stays unacked until the protocol ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import structlog
from prometheus_client import CollectorRegistry

from stockflow.inventory.domain.commands import OrderLine, ReleaseReservation, ReserveStock
from stockflow.inventory.domain.events import StockReserved
from stockflow.inventory.domain.model import StockState
from stockflow.inventory.service_layer.batch import Outcome
from stockflow.inventory.service_layer.leases import RELEASE_ROUTE, RESERVE_ROUTE, recorded_id
from stockflow.inventory.service_layer.ownership import Spanning
from stockflow.inventory.service_layer.ports import PartResult, PeerPart, Peers
from stockflow.inventory.service_layer.writer import InventoryWriter
from stockflow_kit.observability import counter

__all__ = ["ReservationCoordinator", "holds", "reserved"]

_log = structlog.get_logger("stockflow.inventory")


def holds(states: Mapping[str, StockState], order_id: str, lines: Sequence[OrderLine]) -> bool:
    """Whether ``order_id`` holds exactly ``lines`` (summed per SKU) in ``states``."""
    wanted: dict[str, int] = {}
    for sku, qty in lines:
        wanted[sku] = wanted.get(sku, 0) + qty
    for sku, qty in wanted.items():
        state = states.get(sku)
        if state is None or state.reservations.get(order_id) != qty:
            return False
    return True


def reserved(
    outcome: Outcome, states: Mapping[str, StockState], order_id: str, lines: Sequence[OrderLine]
) -> bool:
    """Whether a reservation's outcome leaves the order holding ``lines``: its events say so,
    or (a duplicate, an order that already held them) the committed states do."""
    if outcome.status == "rejected":
        return False
    if outcome.events:
        return any(isinstance(event, StockReserved) for event in outcome.events)
    return holds(states, order_id, lines)


class ReservationCoordinator:
    """Drive spanning reservations to all-or-nothing; see the module docstring."""

    def __init__(
        self, writer: InventoryWriter, peers: Peers, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.writer = writer
        self.peers = peers
        self.ownership = writer.ownership
        self.outcomes = counter(
            "inventory_spanning_reservations",
            "Reservations spanning replicas coordinated here, by outcome"
            " (reserved, compensated, failed: retried by redelivery).",
            ["outcome"],
            registry=registry,
        )

    async def reserve(self, spanning: Spanning) -> bool:
        """Run the protocol for one order; ``True`` when it holds every line, ``False`` when
        it holds none. Raises when a part has no definite answer (redeliver and re-drive)."""
        (result,) = await self.reserve_all([spanning])
        if isinstance(result, BaseException):
            raise result
        return result

    async def reserve_all(self, spannings: Sequence[Spanning]) -> list[bool | BaseException]:
        """Run the protocol for every order of a consumed batch at once: each round (the
        tries, then the compensations) sends ALL remote parts in one :meth:`Peers.call`, one
        request per owner, instead of one call per part. One result per order, in order:
        whether it holds every line (``True``) or none (``False``), or the failure of a part
        without a definite answer (the caller redelivers and re-drives)."""
        plans = [(s, self.ownership.split(s.command.lines)) for s in spannings]
        tries = [
            [
                PeerPart(
                    "reserve",
                    unit,
                    s.command.order_id,
                    self._key(s.message_id, unit),
                    lines=lines,
                    correlation_id=s.correlation_id,
                )
                for unit, lines in parts.items()
            ]
            for s, parts in plans
        ]
        tried = await self._run(tries, spannings)
        results: list[bool | BaseException] = []
        undo: dict[int, list[PeerPart]] = {}
        for index, ((spanning, _), order_parts, answers) in enumerate(
            zip(plans, tries, tried, strict=True)
        ):
            failure = next((a for a in answers if isinstance(a, BaseException)), None)
            if failure is not None:
                self._failed(spanning, failure)
                results.append(failure)
            elif all(answers):
                self.outcomes.labels("reserved").inc()
                results.append(True)
            else:
                results.append(False)
                undo[index] = [
                    _release_of(part) for part, ok in zip(order_parts, answers, strict=True) if ok
                ]
        if not undo:
            return results
        released = await self._run(list(undo.values()), [spannings[i] for i in undo])
        for index, answers in zip(undo, released, strict=True):
            failure = next((a for a in answers if isinstance(a, BaseException)), None)
            if failure is not None:
                self._failed(spannings[index], failure)
                results[index] = failure
                continue
            self.outcomes.labels("compensated").inc()
            _log.info(
                "inventory.spanning_reservation_compensated",
                order_id=spannings[index].command.order_id,
                released_replicas=[part.unit for part in undo[index]],
            )
        return results

    def _failed(self, spanning: Spanning, failure: BaseException) -> None:
        self.outcomes.labels("failed").inc()
        _log.warning(
            "inventory.spanning_reservation_failed",
            order_id=spanning.command.order_id,
            message_id=spanning.message_id,
            error=repr(failure),
        )

    def _key(self, message_id: str, replica: int) -> str:
        return self.ownership.part_key(message_id, replica)

    async def _run(
        self, orders: Sequence[Sequence[PeerPart]], spannings: Sequence[Spanning]
    ) -> list[list[bool | BaseException]]:
        """Every part of ``orders`` at once: the local ones through the writer, ALL the
        remote ones in one :meth:`Peers.call`. The answers per order, in order."""
        local: list[tuple[int, int, PeerPart]] = []
        remote: list[tuple[int, int, PeerPart]] = []
        for i, parts in enumerate(orders):
            for j, part in enumerate(parts):
                (local if self.ownership.is_local(part.unit) else remote).append((i, j, part))
        answers: list[list[bool | BaseException]] = [[False] * len(parts) for parts in orders]
        local_answers, remote_answers = await asyncio.gather(
            asyncio.gather(
                *(self._local(part, spannings[i]) for i, _, part in local),
                return_exceptions=True,
            ),
            self.peers.call([part for _, _, part in remote]) if remote else _nothing(),
        )
        for (i, j, _), answer in zip(local, local_answers, strict=True):
            answers[i][j] = answer
        for (i, j, _), answer in zip(remote, remote_answers, strict=True):
            answers[i][j] = answer
        return answers

    async def _local(self, part: PeerPart, spanning: Spanning) -> bool:
        """A part this process owns, through its own writer, recorded under the id the
        owner's internal API would record it under (leases) or its key (static)."""
        leased = self.ownership.leased
        if part.op == "reserve":
            outcome = await self.writer.submit(
                ReserveStock(order_id=part.order_id, lines=part.lines),
                message_id=recorded_id(RESERVE_ROUTE, part.key) if leased else part.key,
                correlation_id=spanning.correlation_id,
                traceparent=spanning.traceparent,
                urgent=True,
            )
            return reserved(outcome, self.writer.states, part.order_id, part.lines)
        await self.writer.submit(
            ReleaseReservation(order_id=part.order_id, skus=part.skus),
            message_id=recorded_id(RELEASE_ROUTE, part.key) if leased else part.key,
            correlation_id=spanning.correlation_id,
            traceparent=spanning.traceparent,
            urgent=True,
        )
        return True


def _release_of(part: PeerPart) -> PeerPart:
    """The compensation of a held reservation part: release its SKUs, key ``…/release``."""
    return PeerPart(
        "release",
        part.unit,
        part.order_id,
        f"{part.key}/release",
        skus=tuple(dict.fromkeys(sku for sku, _ in part.lines)),
        correlation_id=part.correlation_id,
    )


async def _nothing() -> list[PartResult]:
    return []
