"""Per-partition bookkeeping of a Kafka subscription: what is out, what is done, what to commit.

Kafka keeps one committed offset per (group, partition): every record below it is done. The
kit's port acks single messages, so a subscription tracks, per assigned partition, the
offsets it has read and not finished (``open``): the offset to commit is the smallest open
one, or the next one to read when none is open. Pure logic, no I/O: unit-tested directly.

A second offset per partition, committed to the ``<durable>.delivered`` group, marks what
was handed out at least once (``delivered``). A consumer that takes a partition over counts
a record below it as delivered before (its ``delivery_count`` starts at 2), which is how a
message whose consumer crashed comes back with a higher count, as on the other backends.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Final

from stockflow_kit.messaging.envelope import Envelope

__all__ = ["REMEMBERED_IDS", "PartitionState", "Pending"]

REMEMBERED_IDS: Final = 100_000
"""Envelope ids a subscription remembers per partition to drop re-published duplicates."""


@dataclass(slots=True, eq=False)
class Pending:
    """A record a subscription has read and not finished: out to a consumer, or held back.

    Args:
        state: The partition state it belongs to (its ``epoch`` tells a stale delivery).
        offset: Its Kafka offset.
        topic: Its kit topic.
        envelope: The decoded envelope.
        headers: Its headers (text).
        value: The raw record value (what a dead letter carries).
        key: The record key (the envelope subject).
        timestamp_ms: The broker timestamp (age of the oldest pending message).
        count: Deliveries so far (0 before the first).
        due: Monotonic time at which it is handed out again (ack_wait, nak delay).
        out: True while a consumer holds it.
        reason: The last nak reason.
        dead_lettered: True once it was dead-lettered: a later ack or nak of any of its
            deliveries is a no-op (the record is finished and never comes back).
    """

    state: PartitionState
    offset: int
    topic: str
    envelope: Envelope
    headers: dict[str, str]
    value: bytes
    key: bytes | None
    timestamp_ms: int
    count: int = 0
    due: float = 0.0
    out: bool = False
    reason: str | None = None
    dead_lettered: bool = False


@dataclass(slots=True, eq=False)
class PartitionState:
    """One assigned partition, from assignment to revocation.

    Args:
        tp: The aiokafka ``TopicPartition``.
        epoch: Increases at each assignment; deliveries of an older epoch are stale.
        committed: The committed offset at assignment (``None``: the group has none yet).
        delivered: Records below this offset were handed out before the assignment.
    """

    tp: Any
    epoch: int
    committed: int | None
    delivered: int
    next_read: int | None = None
    handed: int = 0
    marked: int = 0
    open: dict[int, Pending] = field(default_factory=dict)
    seen: collections.OrderedDict[str, None] = field(default_factory=collections.OrderedDict)

    def __post_init__(self) -> None:
        self.next_read = self.committed
        self.handed = self.marked = self.delivered

    def first_count(self, offset: int) -> int:
        """Deliveries a newly read record at *offset* already had (1 if handed out before)."""
        return 1 if offset < self.delivered else 0

    def read(self, offset: int) -> None:
        """Note that the record at *offset* was read (finished or not)."""
        self.next_read = offset + 1

    def is_duplicate(self, envelope_id: str) -> bool:
        """Tell whether *envelope_id* was seen on this partition; remember it if not."""
        if envelope_id in self.seen:
            return True
        self.seen[envelope_id] = None
        if len(self.seen) > REMEMBERED_IDS:
            self.seen.popitem(last=False)
        return False

    def hand_out(self, pending: Pending) -> None:
        """Note that *pending* goes out to a consumer now."""
        self.handed = max(self.handed, pending.offset + 1)

    def finish(self, offset: int) -> None:
        """Note that the record at *offset* is done (acked, dead-lettered)."""
        self.open.pop(offset, None)

    def commit_position(self) -> int | None:
        """The offset to commit: the smallest open one, else the next to read."""
        if self.open:
            return min(self.open)
        return self.next_read

    def oldest_timestamp_ms(self) -> int | None:
        """The broker timestamp of the oldest open record, if any is open."""
        if not self.open:
            return None
        return self.open[min(self.open)].timestamp_ms
