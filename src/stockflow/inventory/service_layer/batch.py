"""Deciding one batch of commands against in-memory states: pure, no I/O, no awaits.

The writer (:mod:`.partitions`) hands a batch of fresh submissions to :func:`decide_batch` and
gets back everything one ``CommitBatch`` needs plus one :class:`Outcome` per submission. The
given states are never changed: the decisions run on working copies that the writer swaps in
only after the commit succeeded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from stockflow.inventory.domain.commands import Command
from stockflow.inventory.domain.errors import InventoryError
from stockflow.inventory.domain.events import Event
from stockflow.inventory.domain.model import StockState, apply, decide_command
from stockflow.inventory.service_layer.codec import encode_event
from stockflow.inventory.service_layer.ports import IdempotencyRecord, NewEvent, StockRow

__all__ = [
    "EVENT_ID_NAMESPACE",
    "BatchDecision",
    "Outcome",
    "Submission",
    "decide_batch",
    "event_id_for",
    "invariant_violations",
    "records_of",
]

EVENT_ID_NAMESPACE: Final = uuid.UUID("6f1d3c0e-8a7b-5d42-9b1e-3c5a7e2f4d10")
"""For message ids that are not UUIDs: event ids are uuid5(namespace, "<message id>/<index>")."""


Status = Literal["applied", "duplicate", "rejected"]


def event_id_for(message_id: str, index: int) -> uuid.UUID:
    """The id of event number ``index`` decided for message ``message_id``: deterministic.

    A batch redecided after a crash or a fence conflict yields the same ids, so the unique
    event id is a second dedupe guard. See :func:`_event_id_base` for how.
    """
    base = _event_id_base(message_id)
    if base is None:
        return uuid.uuid5(EVENT_ID_NAMESPACE, f"{message_id}/{index}")
    return uuid.UUID(int=base ^ (index + 1))


def _event_id_base(message_id: str) -> int | None:
    """The integer that event ids of ``message_id`` derive from, or ``None`` (use uuid5).

    When the message id is a UUID (bus envelopes are time-ordered UUIDv7s), event ``i`` gets
    the message id XOR ``i + 1`` in its low bits (random in v4/v7; version and variant bits
    are untouched). Never the message id itself: a command on ``inventory.commands`` shares
    the bus stream (and its dedupe window) with ``inventory.events``, and an event with its
    command's id would be dropped there as a duplicate (it was, before this). XOR is ~1 µs
    instead of ~3 µs for uuid5 on the hot path (profiled: uuid5 was a third of the decide
    time), and events keep the order of their messages, so the unique event id index appends
    at its right edge. Two messages collide only if their ids differ in
    nothing but those low bits by exactly an index difference (~2^-58 per pair); even then
    the unique constraint fails the commit loudly, never silently.
    """
    hex_digits = message_id.replace("-", "")
    if len(hex_digits) != 32:
        return None
    try:
        value = int(hex_digits, 16)
    except ValueError:
        return None
    version = (value >> 76) & 0xF
    variant = (value >> 62) & 0b11
    return value if version in (4, 7) and variant == 0b10 else None


@dataclass(slots=True)
class Outcome:
    """What became of one submitted command.

    ``applied``: its events (maybe none: an idempotent no-op) are committed. ``rejected``: a
    domain error (``error``), recorded as processed. ``duplicate``: its message id was already
    processed; nothing happened now. ``stock``: the rows of its SKUs right after it (only when
    the submission asked for them).
    """

    message_id: str
    status: Status
    events: tuple[Event, ...] = ()
    error: InventoryError | None = None
    stock: tuple[StockRow, ...] = ()


Record = Callable[[Outcome], IdempotencyRecord]
"""Builds the Idempotency-Key record of a submission's answer from its outcome."""


@dataclass(slots=True, eq=False)
class Submission:
    """One command waiting for the writer; ``future`` resolves to its :class:`Outcome`.

    ``record``: for an HTTP write with an Idempotency-Key, how to build the stored answer
    from the outcome; the writer commits that record in the same transaction as the effect,
    so the replay answer survives any crash.
    """

    message_id: str
    command: Command
    correlation_id: str | None = None
    want_stock: bool = False
    future: asyncio.Future[Outcome] | None = field(default=None, repr=False)
    record: Record | None = field(default=None, repr=False)
    traceparent: str | None = field(default=None, repr=False)
    """The trace context of the request or message it came from, stored with its events."""


def records_of(
    fresh: Sequence[Submission], outcomes: Mapping[str, Outcome]
) -> list[IdempotencyRecord]:
    """The idempotency records of the decided submissions that asked for one."""
    return [
        s.record(outcomes[s.message_id])
        for s in fresh
        if s.record is not None and s.message_id in outcomes
    ]


@dataclass(slots=True)
class BatchDecision:
    events: list[NewEvent]
    states: dict[str, StockState]
    """The touched SKUs' states after the batch (the working copies)."""
    outcomes: dict[str, Outcome]
    """By message id."""

    @property
    def stock(self) -> list[StockRow]:
        """The projection rows of the touched SKUs that have a stock record."""
        return [_row(state) for state in self.states.values() if state.has_stock]


def _row(state: StockState) -> StockRow:
    return StockRow(
        sku=state.sku, on_hand=state.on_hand, reserved=state.reserved, version=state.version
    )


def decide_batch(
    states: Mapping[str, StockState],
    submissions: Sequence[Submission],
    *,
    now: datetime,
    low_stock_threshold: int,
) -> BatchDecision:
    """Decide ``submissions`` in order; each sees the effects of those before it."""
    working: dict[str, StockState] = {}
    events: list[NewEvent] = []
    outcomes: dict[str, Outcome] = {}
    for submission in submissions:
        command = submission.command
        message_id = submission.message_id
        view = {}
        for sku in command.skus:
            state = working.get(sku) or states.get(sku)
            view[sku] = state if state is not None else StockState(sku=sku)
        try:
            decided = decide_command(view, command, low_stock_threshold=low_stock_threshold)
        except InventoryError as error:
            outcomes[message_id] = Outcome(message_id, "rejected", error=error)
            continue
        id_base = _event_id_base(message_id)
        for index, event in enumerate(decided):
            sku = event.sku
            state = apply(working.get(sku) or view.get(sku) or StockState(sku=sku), event)
            working[sku] = state
            events.append(
                NewEvent(
                    stream_id=sku,
                    sequence=state.version,
                    event_id=(
                        uuid.UUID(int=id_base ^ (index + 1))
                        if id_base is not None
                        else event_id_for(message_id, index)
                    ),
                    type=type(event).__name__,
                    data=encode_event(event),
                    occurred_at=now,
                    correlation_id=submission.correlation_id,
                    causation_id=message_id,
                    traceparent=submission.traceparent,
                )
            )
        outcome = Outcome(message_id, "applied", events=tuple(decided))
        if submission.want_stock:
            outcome.stock = tuple(_row(working.get(sku) or view[sku]) for sku in command.skus)
        outcomes[message_id] = outcome
    return BatchDecision(events=events, states=working, outcomes=outcomes)


def invariant_violations(states: Mapping[str, StockState]) -> list[str]:
    """What is wrong with ``states``: negative quantities, or reservations that do not add up."""
    broken = []
    for state in states.values():
        if state.on_hand < 0 or state.reserved < 0 or state.available < 0:
            broken.append(
                f"{state.sku}: on_hand={state.on_hand} reserved={state.reserved}"
                f" available={state.available}"
            )
        elif state.reserved != sum(state.reservations.values()):
            broken.append(f"{state.sku}: reserved={state.reserved} != sum of reservations")
    return broken
