"""Remembering deliveries dead-lettered at once, so that acking their batch skips them."""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Sequence
from typing import Final

from stockflow_kit.messaging.bus import Delivery

__all__ = ["DeadLettered"]

_REMEMBERED: Final = 10_000


class DeadLettered:
    """The keys of deliveries a subscription dead-lettered through ``dead_letter``.

    A batch is usually acked (or nakked) right after: :meth:`without` drops those deliveries
    from it and forgets them. Keys of batches never settled are forgotten oldest first once
    more than *limit* are held.

    Args:
        key: The backend's handle of a delivery (its seq, its ack subject).
        limit: How many keys are held at most.
    """

    __slots__ = ("_key", "_keys", "_limit")

    def __init__(self, key: Callable[[Delivery], Hashable], limit: int = _REMEMBERED) -> None:
        self._key, self._limit = key, limit
        self._keys: collections.OrderedDict[Hashable, None] = collections.OrderedDict()

    def add(self, delivery: Delivery) -> None:
        """Remember that *delivery* was dead-lettered."""
        self._keys[self._key(delivery)] = None
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)

    def without(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        """Return *deliveries* minus the dead-lettered ones (which are forgotten)."""
        if not self._keys:
            return deliveries
        kept = []
        for delivery in deliveries:
            key = self._key(delivery)
            if key in self._keys:
                del self._keys[key]
            else:
                kept.append(delivery)
        return kept
