"""Checks and reshaping of a ``CommitBatch`` that every event store does the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from stockflow.inventory.service_layer.ports import ConcurrencyError, NewEvent, StockRow

__all__ = ["KnownVersions", "last_row_per_sku", "stream_ranges"]


def stream_ranges(events: Sequence[NewEvent]) -> dict[str, tuple[int, int]]:
    """Map each stream of the batch to its ``(first, last)`` new sequence.

    Raises:
        ConcurrencyError: a stream's sequences in the batch do not count up by one from >= 1.
    """
    ranges: dict[str, tuple[int, int]] = {}
    for event in events:
        stream_id = event.stream_id
        sequence = event.sequence
        known = ranges.get(stream_id)
        if known is None:
            if sequence < 1:
                raise ConcurrencyError(f"{stream_id}: sequence {sequence} is below 1")
            ranges[stream_id] = (sequence, sequence)
        elif sequence == known[1] + 1:
            ranges[stream_id] = (known[0], sequence)
        else:
            raise ConcurrencyError(
                f"{stream_id}: sequence {sequence} follows {known[1]} in the same batch"
            )
    return ranges


def last_row_per_sku(rows: Iterable[StockRow]) -> list[StockRow]:
    """One row per SKU, the last given winning (an upsert may touch a row only once)."""
    return list({row.sku: row for row in rows}.values())


class KnownVersions:
    """Stream versions this store instance committed itself, to skip most gap checks.

    Events are never deleted, so a version once committed stays a lower bound of the stream's
    version. When a stream's first new sequence is exactly that bound + 1, its predecessor
    exists and no database lookup is needed; if another writer went further meanwhile, the
    unique (stream, sequence) constraint still refuses the overlap.
    """

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}

    def anchors(self, ranges: dict[str, tuple[int, int]]) -> list[tuple[str, int]]:
        """The ``(stream, first - 1)`` pairs that must be found in the store before appending."""
        known = self._versions
        return [
            (stream_id, first - 1)
            for stream_id, (first, _) in ranges.items()
            if first > 1 and known.get(stream_id) != first - 1
        ]

    def committed(self, ranges: dict[str, tuple[int, int]]) -> None:
        known = self._versions
        for stream_id, (_, last) in ranges.items():
            known[stream_id] = last
