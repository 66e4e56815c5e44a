"""Reads served from the writer's committed in-memory states: no I/O, no thread hop.

The states are swapped in right after a batch commits and before its callers are answered, so
a client that just wrote reads its own write. A SKU this process does not own (several
replicas) is read from the shared projection instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from stockflow.inventory.domain.commands import OrderLine
from stockflow.inventory.service_layer.committed import CommittedState
from stockflow.inventory.service_layer.ports import EventStore, StockRow
from stockflow.inventory.service_layer.reservations import holds

__all__ = ["CommittedReads"]


class CommittedReads:
    """``get_stock`` and ``holds`` over *committed*, falling back to *projection*."""

    def __init__(self, committed: CommittedState, projection: EventStore) -> None:
        self.committed = committed
        self.projection = projection

    def row(self, sku: str) -> StockRow | None:
        """The committed row of an owned SKU (``None``: never recorded)."""
        state = self.committed.states.get(sku)
        if state is None or not state.has_stock:
            return None
        return StockRow(
            sku=state.sku, on_hand=state.on_hand, reserved=state.reserved, version=state.version
        )

    def owned_row(self, sku: str) -> StockRow | None:
        """The committed row of *sku* when this process owns it and it was recorded; else
        ``None`` (:meth:`get_stock` knows more: the projection, or that it never was)."""
        return self.row(sku) if self.committed.ownership.owns(sku) else None

    async def get_stock(self, sku: str) -> StockRow | None:
        if self.committed.ownership.owns(sku):
            return self.row(sku)
        return await self.projection.get_stock(sku)

    def holds(self, order_id: str, lines: Sequence[OrderLine]) -> bool:
        """Whether the order holds exactly *lines* (owned SKUs) now."""
        return holds(self.committed.states, order_id, lines)
