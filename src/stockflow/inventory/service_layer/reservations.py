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
from stockflow.inventory.service_layer.ports import Peers
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
        command = spanning.command
        parts = self.ownership.split(command.lines)
        keys = {replica: self._key(spanning.message_id, replica) for replica in parts}
        results = await asyncio.gather(
            *(
                self._reserve_part(replica, command.order_id, lines, keys[replica], spanning)
                for replica, lines in parts.items()
            ),
            return_exceptions=True,
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            self.outcomes.labels("failed").inc()
            _log.warning(
                "inventory.spanning_reservation_failed",
                order_id=command.order_id,
                message_id=spanning.message_id,
                error=repr(failure),
            )
            raise failure
        if all(results):
            self.outcomes.labels("reserved").inc()
            return True
        held = [replica for replica, ok in zip(parts, results, strict=True) if ok]
        released = await asyncio.gather(
            *(
                self._release_part(
                    replica, command.order_id, parts[replica], keys[replica], spanning
                )
                for replica in held
            ),
            return_exceptions=True,
        )
        failure = next((r for r in released if isinstance(r, BaseException)), None)
        if failure is not None:
            self.outcomes.labels("failed").inc()
            raise failure
        self.outcomes.labels("compensated").inc()
        _log.info(
            "inventory.spanning_reservation_compensated",
            order_id=command.order_id,
            released_replicas=held,
        )
        return False

    def _key(self, message_id: str, replica: int) -> str:
        return self.ownership.part_key(message_id, replica)

    async def _reserve_part(
        self,
        replica: int,
        order_id: str,
        lines: tuple[OrderLine, ...],
        key: str,
        spanning: Spanning,
    ) -> bool:
        if not self.ownership.is_local(replica):
            return await self.peers.reserve(
                replica, order_id, lines, key=key, correlation_id=spanning.correlation_id
            )
        outcome = await self.writer.submit(
            ReserveStock(order_id=order_id, lines=lines),
            message_id=recorded_id(RESERVE_ROUTE, key) if self.ownership.leased else key,
            correlation_id=spanning.correlation_id,
            traceparent=spanning.traceparent,
        )
        return reserved(outcome, self.writer.states, order_id, lines)

    async def _release_part(
        self,
        replica: int,
        order_id: str,
        lines: tuple[OrderLine, ...],
        key: str,
        spanning: Spanning,
    ) -> None:
        skus = tuple(dict.fromkeys(sku for sku, _ in lines))
        release_key = f"{key}/release"
        if not self.ownership.is_local(replica):
            await self.peers.release(
                replica, order_id, skus, key=release_key, correlation_id=spanning.correlation_id
            )
            return
        await self.writer.submit(
            ReleaseReservation(order_id=order_id, skus=skus),
            message_id=(
                recorded_id(RELEASE_ROUTE, release_key) if self.ownership.leased else release_key
            ),
            correlation_id=spanning.correlation_id,
            traceparent=spanning.traceparent,
        )
