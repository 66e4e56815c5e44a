"""What the role suites of the event store share: the fixtures and the batch builders.

One abstract suite per role of ``EventStore`` (``event_log_contract``,
``processed_ids_contract``, ``snapshots_contract``, ``checkpoints_contract``,
``stock_projection_contract``, ``idempotency_contract``), each a subclass of
:class:`StoreContract`. Subclass each suite once per implementation (``Test…`` name) and provide
the ``open_store`` fixture: a factory that returns a new, unstarted store over the same storage
each time it is called (a durable store sees what an earlier instance committed; set
``durable = False`` otherwise).

Every suite runs on a whole ``EventStore``: ``commit`` is the only writer of most roles, so a
role's cases write through it and read through the role.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    EventStore,
    Fence,
    IdempotencyRecord,
    NewEvent,
    StockRow,
)

T0 = datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC)


def new_event(stream_id: str, sequence: int, *, event_id: uuid.UUID | None = None) -> NewEvent:
    return NewEvent(
        stream_id=stream_id,
        sequence=sequence,
        event_id=event_id or uuid.uuid4(),
        type="StockReceived",
        data=b'{"sku":"%s","qty":%d}' % (stream_id.encode(), sequence),
        occurred_at=T0 + timedelta(seconds=sequence),
        correlation_id=f"corr-{stream_id}",
        causation_id=f"cause-{sequence}",
        traceparent=traceparent_of(stream_id, sequence),
    )


def traceparent_of(stream_id: str, sequence: int) -> str:
    """A W3C ``traceparent`` per event of :func:`new_event`."""
    return f"00-{uuid.uuid5(uuid.NAMESPACE_OID, stream_id).hex}-{sequence:016x}-01"


def batch(
    events: Sequence[NewEvent] = (),
    *,
    processed: Sequence[str] = (),
    stock: Sequence[StockRow] = (),
    fence: Fence | None = None,
    idempotency: Sequence[IdempotencyRecord] = (),
    at: datetime = T0,
) -> CommitBatch:
    return CommitBatch(
        events=events,
        processed=processed,
        stock=stock,
        fence=fence,
        idempotency=idempotency,
        processed_at=at,
    )


def row(sku: str, on_hand: int, version: int, reserved: int = 0) -> StockRow:
    return StockRow(sku=sku, on_hand=on_hand, reserved=reserved, version=version)


class StoreContract:
    """The fixtures of every role suite (not a suite itself: it has no cases)."""

    durable: ClassVar[bool] = True

    @pytest.fixture
    def open_store(self) -> Callable[[], EventStore]:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, open_store: Callable[[], EventStore]) -> AsyncIterator[EventStore]:
        store = open_store()
        await store.start()
        yield store
        await store.close()

    async def assert_untouched(self, store: EventStore) -> None:
        """Nothing of the failed batches in these tests may be visible."""
        assert await store.read_all() == []
        assert await store.processed(["m-1", "m-2"]) == set()
        assert await store.all_stock() == []
        assert await store.projection_checkpoint() == 0

    async def reopen(self, store: EventStore, open_store: Callable[[], EventStore]) -> EventStore:
        """Close ``store`` and start a new instance over the same storage (durable only)."""
        if not self.durable:
            pytest.skip("not a durable store: nothing outlives an instance")
        await store.close()
        reopened = open_store()
        await reopened.start()
        return reopened


async def check_trace_context_added(open_store: Callable[[], EventStore]) -> None:
    """A store reopened on a log written before the ``traceparent`` column (the test drops it
    after one event, "A" 1): the old event reads back without one, a new one keeps its own."""
    store = open_store()
    await store.start()
    try:
        (old,) = await store.read_all()
        assert (old.stream_id, old.correlation_id, old.traceparent) == ("A", "corr-A", None)
        await store.commit(batch([new_event("A", 2)]))
        assert [e.traceparent for e in await store.read_stream("A")] == [
            None,
            traceparent_of("A", 2),
        ]
    finally:
        await store.close()
