"""``EventLogContract``: how every store appends, reads and fences events (``EventLog``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from tests.inventory.contract.event_store_contract import (
    T0,
    StoreContract,
    batch,
    new_event,
    row,
)

from stockflow.inventory.service_layer.ports import (
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    Fence,
    NewEvent,
    StaleFenceError,
)


class EventLogContract(StoreContract):
    async def test_an_empty_log_has_nothing(self, store: EventStore) -> None:
        assert await store.stream_version("A") == 0
        assert await store.read_stream("A") == []
        await self.assert_untouched(store)
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
        assert first.traceparent == expected.traceparent is not None
        [b] = [e for e in await store.read_all() if e.stream_id == "B"]
        assert b.traceparent == events[1].traceparent
        assert await store.stream_version("A") == 2
        assert await store.stream_version("B") == 1

    async def test_stream_versions_are_every_streams_last_sequence(self, store: EventStore) -> None:
        assert await store.stream_versions() == {}
        await store.commit(batch([new_event("B", 1), new_event("A", 1), new_event("A", 2)]))
        await store.commit(batch([new_event("C-1", 1), new_event("A", 3)]))
        assert await store.stream_versions() == {"A": 3, "B": 1, "C-1": 1}
        doomed = batch([new_event("D", 1), new_event("A", 3)])
        with pytest.raises(ConcurrencyError):
            await store.commit(doomed)
        assert await store.stream_versions() == {"A": 3, "B": 1, "C-1": 1}

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
        assert stored.traceparent is None

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

    async def test_a_reopened_store_keeps_its_events_and_fences(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        await store.commit(
            batch(
                [new_event("A", 1), new_event("A", 2)],
                processed=["m-1"],
                stock=[row("A", 2, 2)],
                fence=Fence(key="p-0", expected_version=0),
            )
        )
        expected = await store.read_all()
        reopened = await self.reopen(store, open_store)
        try:
            assert await reopened.read_all() == expected
            assert await reopened.fence_version("p-0") == 1
            await reopened.commit(batch([new_event("A", 3)]))
            assert await reopened.stream_version("A") == 3
        finally:
            await reopened.close()

    async def test_a_second_writer_cannot_overwrite_a_stream(
        self, store: EventStore, open_store: Callable[[], EventStore]
    ) -> None:
        if not self.durable:
            pytest.skip("not a durable store: no second instance shares its storage")
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
