"""``EventStoreContract``: the behaviour every ``EventStore`` must show, one suite for all.

Subclass it once per implementation (``Test…`` name) and provide the ``open_store`` fixture: a
factory that returns a new, unstarted store over the same storage each time it is called (a
durable store sees what an earlier instance committed; set ``durable = False`` otherwise).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from stockflow.inventory.service_layer.ports import (
    CommitBatch,
    ConcurrencyError,
    DuplicateEventError,
    DuplicateMessageError,
    EventStore,
    Fence,
    IdempotentResponse,
    NewEvent,
    Snapshot,
    StaleFenceError,
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
    )


def batch(
    events: Sequence[NewEvent] = (),
    *,
    processed: Sequence[str] = (),
    stock: Sequence[StockRow] = (),
    fence: Fence | None = None,
    at: datetime = T0,
) -> CommitBatch:
    return CommitBatch(
        events=events, processed=processed, stock=stock, fence=fence, processed_at=at
    )


def row(sku: str, on_hand: int, version: int, reserved: int = 0) -> StockRow:
    return StockRow(sku=sku, on_hand=on_hand, reserved=reserved, version=version)


class EventStoreContract:
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

    async def test_an_empty_store_has_nothing(self, store: EventStore) -> None:
        assert await store.stream_version("A") == 0
        assert await store.read_stream("A") == []
        await self.assert_untouched(store)
        assert await store.load_snapshots() == []
        assert await store.get_stock("A") is None
        assert await store.fence_version("p-0") == 0

    async def test_committed_events_read_back_with_every_field(self, store: EventStore) -> None:
        events = [new_event("A", 1), new_event("B", 1), new_event("A", 2)]
        await store.commit(batch(events))
        stored = await store.read_stream("A")
        assert [(e.stream_id, e.sequence) for e in stored] == [("A", 1), ("A", 2)]
        first = stored[0]
        expected = events[0]
        assert first.event_id == expected.event_id
        assert (first.type, first.data) == (expected.type, expected.data)
        assert first.occurred_at == expected.occurred_at
        assert (first.correlation_id, first.causation_id) == ("corr-A", "cause-1")
        assert await store.stream_version("A") == 2
        assert await store.stream_version("B") == 1

    async def test_optional_metadata_may_be_absent(self, store: EventStore) -> None:
        event = new_event("A", 1)
        bare = NewEvent(
            stream_id="A",
            sequence=1,
            event_id=event.event_id,
            type=event.type,
            data=b"",
            occurred_at=T0,
        )
        await store.commit(batch([bare]))
        (stored,) = await store.read_stream("A")
        assert (stored.correlation_id, stored.causation_id, stored.data) == (None, None, b"")

    async def test_read_stream_pages_after_a_sequence(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", n) for n in range(1, 6)]))
        page = await store.read_stream("A", after=1, limit=2)
        assert [e.sequence for e in page] == [2, 3]
        assert [e.sequence for e in await store.read_stream("A", after=3)] == [4, 5]
        assert await store.read_stream("A", limit=0) == []
        assert await store.read_stream("A", after=5) == []

    async def test_read_all_follows_commit_order_and_pages(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1), new_event("B", 1)]))
        await store.commit(batch([new_event("B", 2), new_event("A", 2)]))
        everything = await store.read_all()
        assert [(e.stream_id, e.sequence) for e in everything] == [
            ("A", 1),
            ("B", 1),
            ("B", 2),
            ("A", 2),
        ]
        positions = [e.position for e in everything]
        assert positions == sorted(set(positions))
        first_page = await store.read_all(limit=3)
        assert first_page == everything[:3]
        assert await store.read_all(after_position=first_page[-1].position) == everything[3:]

    async def test_commit_returns_the_last_position_as_checkpoint(self, store: EventStore) -> None:
        checkpoint = await store.commit(batch([new_event("A", 1), new_event("A", 2)]))
        assert checkpoint == (await store.read_all())[-1].position
        assert await store.projection_checkpoint() == checkpoint

    async def test_an_existing_sequence_is_a_conflict_and_commits_nothing(
        self, store: EventStore
    ) -> None:
        await store.commit(batch([new_event("A", 1)]))
        before = await store.read_all()
        doomed = batch(
            [new_event("B", 1), new_event("A", 1)], processed=["m-1"], stock=[row("B", 1, 1)]
        )
        with pytest.raises(ConcurrencyError):
            await store.commit(doomed)
        assert await store.read_all() == before
        assert await store.stream_version("B") == 0
        assert await store.processed(["m-1"]) == set()
        assert await store.get_stock("B") is None
        assert await store.projection_checkpoint() == before[-1].position

    async def test_a_gap_after_the_last_event_is_a_conflict(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)]))
        with pytest.raises(ConcurrencyError):
            await store.commit(batch([new_event("A", 3)]))
        assert await store.stream_version("A") == 1

    async def test_a_new_stream_must_start_at_one(self, store: EventStore) -> None:
        for first in (0, 2):
            with pytest.raises(ConcurrencyError):
                await store.commit(batch([new_event("A", first)], processed=["m-1"]))
        await self.assert_untouched(store)

    async def test_a_gap_inside_the_batch_is_a_conflict(self, store: EventStore) -> None:
        with pytest.raises(ConcurrencyError):
            await store.commit(batch([new_event("A", 1), new_event("A", 3)]))
        with pytest.raises(ConcurrencyError):
            await store.commit(batch([new_event("A", 1), new_event("A", 1)]))
        await self.assert_untouched(store)

    async def test_a_stored_event_id_is_a_duplicate_and_commits_nothing(
        self, store: EventStore
    ) -> None:
        first = new_event("A", 1)
        await store.commit(batch([first]))
        with pytest.raises(DuplicateEventError):
            await store.commit(
                batch([new_event("B", 1), new_event("C", 1, event_id=first.event_id)])
            )
        assert [e.stream_id for e in await store.read_all()] == ["A"]

    async def test_an_event_id_twice_in_one_batch_is_a_duplicate(self, store: EventStore) -> None:
        twice = uuid.uuid4()
        with pytest.raises(DuplicateEventError):
            await store.commit(
                batch([new_event("A", 1, event_id=twice), new_event("B", 1, event_id=twice)])
            )
        await self.assert_untouched(store)

    async def test_processed_ids_are_recorded_with_the_events(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], processed=["m-1", "m-2"]))
        assert await store.processed(["m-1", "m-2", "m-3"]) == {"m-1", "m-2"}
        assert await store.processed([]) == set()

    async def test_processed_ids_are_not_recorded_when_the_commit_fails(
        self, store: EventStore
    ) -> None:
        with pytest.raises(ConcurrencyError):
            await store.commit(batch([new_event("A", 2)], processed=["m-1", "m-2"]))
        await self.assert_untouched(store)

    async def test_an_id_already_processed_is_a_conflict_and_commits_nothing(
        self, store: EventStore
    ) -> None:
        await store.commit(batch(processed=["m-1"]))
        with pytest.raises(DuplicateMessageError):
            await store.commit(batch([new_event("A", 1)], processed=["m-2", "m-1"]))
        assert await store.read_all() == []
        assert await store.processed(["m-1", "m-2"]) == {"m-1"}

    async def test_a_batch_without_events_keeps_the_checkpoint(self, store: EventStore) -> None:
        checkpoint = await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1)]))
        assert await store.commit(batch(processed=["m-1"])) == checkpoint
        assert await store.projection_checkpoint() == checkpoint

    async def test_stock_rows_are_committed_with_the_events(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], stock=[row("A", 5, 1)]))
        await store.commit(
            batch(
                [new_event("A", 2), new_event("B", 1)],
                stock=[row("B", 3, 1), row("A", 5, 2, reserved=2)],
            )
        )
        assert await store.get_stock("A") == row("A", 5, 2, reserved=2)
        assert await store.all_stock() == [row("A", 5, 2, reserved=2), row("B", 3, 1)]
        assert await store.projection_checkpoint() == (await store.read_all())[-1].position

    async def test_the_last_row_of_a_sku_in_a_batch_wins(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], stock=[row("A", 1, 1), row("A", 2, 1)]))
        assert await store.all_stock() == [row("A", 2, 1)]

    async def test_stock_rows_and_checkpoint_roll_back_with_a_failed_commit(
        self, store: EventStore
    ) -> None:
        checkpoint = await store.commit(batch([new_event("A", 1)], stock=[row("A", 5, 1)]))
        with pytest.raises(ConcurrencyError):
            await store.commit(
                batch([new_event("B", 1), new_event("A", 1)], stock=[row("A", 9, 2)])
            )
        assert await store.all_stock() == [row("A", 5, 1)]
        assert await store.projection_checkpoint() == checkpoint

    async def test_a_fence_moves_by_one_per_commit(self, store: EventStore) -> None:
        await store.commit(batch([new_event("A", 1)], fence=Fence(key="p-0", expected_version=0)))
        await store.commit(batch([new_event("A", 2)], fence=Fence(key="p-0", expected_version=1)))
        await store.commit(batch(fence=Fence(key="p-1", expected_version=0)))
        assert await store.fence_version("p-0") == 2
        assert await store.fence_version("p-1") == 1

    async def test_a_stale_fence_raises_and_commits_nothing(self, store: EventStore) -> None:
        await store.commit(batch(fence=Fence(key="p-0", expected_version=0)))
        for stale in (0, 2):
            with pytest.raises(StaleFenceError):
                await store.commit(
                    batch(
                        [new_event("A", 1)],
                        processed=["m-1"],
                        stock=[row("A", 1, 1)],
                        fence=Fence(key="p-0", expected_version=stale),
                    )
                )
        await self.assert_untouched(store)
        assert await store.fence_version("p-0") == 1

    async def test_snapshots_round_trip_and_the_latest_replaces(self, store: EventStore) -> None:
        await store.save_snapshots(
            [
                Snapshot(stream_id="B", version=3, state=b"b3"),
                Snapshot(stream_id="A", version=1, state=b"a1"),
            ]
        )
        await store.save_snapshots([Snapshot(stream_id="A", version=7, state=b"a7")])
        loaded = sorted(await store.load_snapshots(), key=lambda s: s.stream_id)
        assert loaded == [
            Snapshot(stream_id="A", version=7, state=b"a7"),
            Snapshot(stream_id="B", version=3, state=b"b3"),
        ]

    async def test_prune_forgets_only_ids_processed_before_the_cutoff(
        self, store: EventStore
    ) -> None:
        await store.commit(batch(processed=["m-1", "m-2"], at=T0))
        await store.commit(batch(processed=["m-3"], at=T0 + timedelta(hours=2)))
        assert await store.prune_processed(T0 + timedelta(hours=1)) == 2
        assert await store.processed(["m-1", "m-2", "m-3"]) == {"m-3"}
        assert await store.prune_processed(T0 + timedelta(hours=1)) == 0

    async def test_a_reopened_store_keeps_everything(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        if not self.durable:
            pytest.skip("not a durable store")
        await store.commit(
            batch(
                [new_event("A", 1), new_event("A", 2)],
                processed=["m-1"],
                stock=[row("A", 2, 2)],
                fence=Fence(key="p-0", expected_version=0),
            )
        )
        await store.save_snapshots([Snapshot(stream_id="A", version=2, state=b"a2")])
        expected = await store.read_all()
        await store.close()
        reopened = open_store()
        await reopened.start()
        try:
            assert await reopened.read_all() == expected
            assert await reopened.processed(["m-1"]) == {"m-1"}
            assert await reopened.all_stock() == [row("A", 2, 2)]
            assert await reopened.projection_checkpoint() == expected[-1].position
            assert await reopened.fence_version("p-0") == 1
            assert await reopened.load_snapshots() == [
                Snapshot(stream_id="A", version=2, state=b"a2")
            ]
            await reopened.commit(batch([new_event("A", 3)]))
            assert await reopened.stream_version("A") == 3
        finally:
            await reopened.close()

    async def test_a_second_writer_cannot_overwrite_a_stream(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        if not self.durable:
            pytest.skip("not a durable store")
        other = open_store()
        await other.start()
        try:
            await store.commit(batch([new_event("A", 1)], fence=Fence(key="p", expected_version=0)))
            # The other writer decided on a stale view (version 0) and fence.
            with pytest.raises(ConcurrencyError):
                await other.commit(batch([new_event("A", 1)]))
            with pytest.raises(StaleFenceError):
                await other.commit(
                    batch([new_event("A", 2)], fence=Fence(key="p", expected_version=0))
                )
            assert [e.stream_id for e in await other.read_all()] == ["A"]
        finally:
            await other.close()

    async def test_a_named_checkpoint_starts_at_zero_and_only_moves_forward(
        self, store: EventStore
    ) -> None:
        assert await store.checkpoint("published") == 0
        await store.save_checkpoint("published", 7)
        await store.save_checkpoint("published", 3)
        assert await store.checkpoint("published") == 7
        assert await store.checkpoint("other") == 0

    async def test_the_projection_checkpoint_cannot_be_saved_by_name(
        self, store: EventStore
    ) -> None:
        await store.commit(batch([new_event("A", 1)]))
        with pytest.raises(ValueError, match="projection"):
            await store.save_checkpoint("projection", 99)
        assert await store.checkpoint("projection") == await store.projection_checkpoint()

    async def test_the_first_idempotent_response_of_a_key_wins(self, store: EventStore) -> None:
        assert await store.idempotent_response("k") is None
        first = IdempotentResponse(key="k", request_hash="h1", status=201, body=b'{"a":1}')
        second = IdempotentResponse(key="k", request_hash="h2", status=409, body=b"{}")
        assert await store.save_idempotent_response(first) == first
        assert await store.save_idempotent_response(second) == first
        assert await store.idempotent_response("k") == first
